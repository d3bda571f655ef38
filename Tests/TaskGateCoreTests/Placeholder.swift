import Testing
@testable import TaskGateCore
