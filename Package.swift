// swift-tools-version:6.0
import PackageDescription

// The engine is built without exclusivity checks: its shared state lives in
// unsafe slabs guarded by atomics and locks it manages itself, and the checks
// would only add cost on the scheduler's hot path.
let engineFlags: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]

let package = Package(
    name: "taskgate",
    products: [
        // libtaskgate.so: only the C ABI (tg_*) is exported from release builds (see Makefile).
        .library(name: "taskgate", type: .dynamic, targets: ["TaskGate"]),
        // The command-line program; `make` installs it as build/bin/taskgate.
        .executable(name: "taskgate-cli", targets: ["TaskGateCLI"]),
    ],
    targets: [
        // C shims: atomics on arena memory, futex, the thread-local error buffer, the task record.
        // The plugin host's C half links libffi (Debian: libffi-dev).
        .target(name: "CTaskGateSupport", linkerSettings: [.linkedLibrary("ffi")]),
        // The public C header's types, for the thunks (prototypes hidden: the thunks define them).
        .target(name: "CTaskGateABI", dependencies: ["CTaskGateSupport"]),
        // The engine, plain Swift, no knowledge of the C ABI.
        .target(name: "TaskGateCore", dependencies: ["CTaskGateSupport"], exclude: ["README.md", "Plugins/README.md", "Resilience/README.md", "Locks/README.md", "Gates/README.md", "Results/README-cache.md"],
                swiftSettings: engineFlags),
        // @_cdecl thunks only.
        .target(name: "TaskGate", dependencies: ["TaskGateCore", "CTaskGateABI", "CTaskGateSupport"],
                swiftSettings: engineFlags),
        // The CLI: a client of the engine (no Foundation).
        .executableTarget(name: "TaskGateCLI", dependencies: ["TaskGateCore", "CTaskGateSupport"]),
        .testTarget(name: "TaskGateCoreTests", dependencies: ["TaskGateCore", "CTaskGateSupport"]),
    ]
)
