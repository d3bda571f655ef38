// Dependency cycle check over integer node ids (see README.md, "Cycles").
//
// Edge i says node from[i] depends on node to[i]. The common case, no cycle, costs
// one counting-sort CSR build and one Kahn pass over raw buffers allocated once.
// Only when Kahn leaves nodes behind does an iterative Tarjan run over those
// nodes, and a breadth-first search names one shortest cycle per cyclic
// strongly connected component, through the component's smallest node.

/// One cycle per cyclic strongly connected component, components ordered by their
/// smallest node. Each cycle starts at its component's smallest node; each element
/// depends on the next (an edge from it to the next exists) and the first node is
/// repeated at the end: a self-dependency is `[a, a]`. Empty when the graph is acyclic.
///
/// Throws `.edgeOutOfRange` for a node outside `0..<nodeCount` and `.invalidGraph`
/// for lists of different lengths, a negative count, or more than Int32.max - 1 nodes or edges.
public func gateFindCycles(nodeCount: Int, from: UnsafeBufferPointer<Int32>,
                           to: UnsafeBufferPointer<Int32>) throws(GateError) -> [[Int32]] {
    try gateScanCycles(nodeCount: nodeCount, from: from, to: to, wantComponents: false).cycles
}

/// Array front for `gateFindCycles`.
public func gateFindCycles(nodeCount: Int, from: [Int32], to: [Int32]) throws(GateError) -> [[Int32]] {
    try from.withUnsafeBufferPointer { (f) throws(GateError) in
        try to.withUnsafeBufferPointer { (t) throws(GateError) in
            try gateFindCycles(nodeCount: nodeCount, from: f, to: t)
        }
    }
}

struct GateCycleScan {
    var cycles: [[Int32]]
    /// Empty when acyclic (or not asked for); else per node the index in `cycles`
    /// of its component, or -1 for a node on no cycle.
    var component: [Int32]
}

func gateScanCycles(nodeCount n: Int, from: UnsafeBufferPointer<Int32>, to: UnsafeBufferPointer<Int32>,
                    wantComponents: Bool) throws(GateError) -> GateCycleScan {
    let m = from.count
    guard n >= 0 else { throw .invalidGraph("node count \(n) is negative") }
    guard to.count == m else { throw .invalidGraph("edge lists differ in length: from has \(m), to has \(to.count)") }
    guard n < Int(Int32.max), m < Int(Int32.max) else {
        throw .invalidGraph("graph too large: \(n) nodes, \(m) edges (at most \(Int32.max - 1) each)")
    }
    if m == 0 { return GateCycleScan(cycles: [], component: []) }
    let fp = from.baseAddress!
    let tp = to.baseAddress!
    if n == 0 { throw .edgeOutOfRange(edge: 0, node: fp[0], nodeCount: 0) }

    // offset: CSR row starts (n + 1); indeg: how many nodes depend on each node.
    let offset = UnsafeMutablePointer<Int32>.allocate(capacity: n + 1)
    offset.initialize(repeating: 0, count: n + 1)
    let indeg = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    indeg.initialize(repeating: 0, count: n)
    // order: the row cursor while scattering, then Kahn's queue, then Tarjan's edge cursor.
    let order = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    let adj = UnsafeMutablePointer<Int32>.allocate(capacity: m)
    defer {
        offset.deallocate()
        indeg.deallocate()
        order.deallocate()
        adj.deallocate()
    }

    // Count out-degrees and in-degrees in one pass, checking ranges on the way.
    let limit = UInt32(truncatingIfNeeded: n)
    var bad = -1
    var e = 0
    while e < m {
        let u = fp[e], v = tp[e]
        if UInt32(bitPattern: u) >= limit || UInt32(bitPattern: v) >= limit {
            bad = e
            break
        }
        offset[Int(truncatingIfNeeded: u) &+ 1] &+= 1
        indeg[Int(truncatingIfNeeded: v)] &+= 1
        e &+= 1
    }
    if bad >= 0 {
        let u = fp[bad]
        throw .edgeOutOfRange(edge: bad, node: UInt32(bitPattern: u) >= limit ? u : tp[bad], nodeCount: n)
    }
    var v = 0
    while v < n {
        offset[v &+ 1] &+= offset[v]
        v &+= 1
    }
    order.initialize(from: offset, count: n)
    e = 0
    while e < m {
        let u = Int(truncatingIfNeeded: fp[e])
        let slot = order[u]
        adj[Int(truncatingIfNeeded: slot)] = tp[e]
        order[u] = slot &+ 1
        e &+= 1
    }

    // Kahn: repeatedly remove nodes nothing (left) depends on.
    var tail = 0
    v = 0
    while v < n {
        if indeg[v] == 0 {
            order[tail] = Int32(truncatingIfNeeded: v)
            tail &+= 1
        }
        v &+= 1
    }
    var head = 0
    while head < tail {
        let u = Int(truncatingIfNeeded: order[head])
        head &+= 1
        var k = Int(truncatingIfNeeded: offset[u])
        let end = Int(truncatingIfNeeded: offset[u &+ 1])
        while k < end {
            let w = Int(truncatingIfNeeded: adj[k])
            let d = indeg[w] &- 1
            indeg[w] = d
            if d == 0 {
                order[tail] = Int32(truncatingIfNeeded: w)
                tail &+= 1
            }
            k &+= 1
        }
    }
    if tail == n { return GateCycleScan(cycles: [], component: []) }

    // Nodes left have indeg > 0: on a cycle, or depended on by one. Tarjan over them.
    return gateNameCycles(n: n, offset: offset, adj: adj, left: indeg, cursor: order, wantComponents: wantComponents)
}

/// Iterative Tarjan restricted to nodes with `left[v] > 0`, then one shortest cycle
/// through the smallest node of each cyclic component.
private func gateNameCycles(n: Int, offset: UnsafeMutablePointer<Int32>, adj: UnsafeMutablePointer<Int32>,
                            left: UnsafeMutablePointer<Int32>, cursor: UnsafeMutablePointer<Int32>,
                            wantComponents: Bool) -> GateCycleScan {
    let index = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    index.initialize(repeating: -1, count: n)
    let low = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    let comp = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    comp.initialize(repeating: -1, count: n)
    let calls = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    let stack = UnsafeMutablePointer<Int32>.allocate(capacity: n)
    defer {
        index.deallocate()
        low.deallocate()
        comp.deallocate()
        calls.deallocate()
        stack.deallocate()
    }

    var counter: Int32 = 0
    var components: Int32 = 0
    var sp = 0
    var cyclic: [(smallest: Int32, component: Int32)] = []

    for root in 0..<n where left[root] > 0 && index[root] < 0 {
        var cp = 0
        index[root] = counter
        low[root] = counter
        counter &+= 1
        cursor[root] = offset[root]
        stack[sp] = Int32(truncatingIfNeeded: root)
        sp &+= 1
        calls[cp] = Int32(truncatingIfNeeded: root)
        cp &+= 1
        while cp > 0 {
            let v = Int(truncatingIfNeeded: calls[cp &- 1])
            let c = cursor[v]
            if c < offset[v &+ 1] {
                cursor[v] = c &+ 1
                let w = Int(truncatingIfNeeded: adj[Int(truncatingIfNeeded: c)])
                if left[w] == 0 { continue }  // removed by Kahn: on no cycle
                if index[w] < 0 {
                    index[w] = counter
                    low[w] = counter
                    counter &+= 1
                    cursor[w] = offset[w]
                    stack[sp] = Int32(truncatingIfNeeded: w)
                    sp &+= 1
                    calls[cp] = Int32(truncatingIfNeeded: w)
                    cp &+= 1
                } else if comp[w] < 0 && index[w] < low[v] {
                    low[v] = index[w]  // w is still on the stack
                }
                continue
            }
            cp &-= 1
            if low[v] == index[v] {
                var smallest = Int32.max
                var size = 0
                var x: Int32
                repeat {
                    sp &-= 1
                    x = stack[sp]
                    comp[Int(truncatingIfNeeded: x)] = components
                    if x < smallest { smallest = x }
                    size &+= 1
                } while Int(truncatingIfNeeded: x) != v
                var isCyclic = size > 1
                if !isCyclic {
                    var k = Int(truncatingIfNeeded: offset[v])
                    let end = Int(truncatingIfNeeded: offset[v &+ 1])
                    while k < end && !isCyclic {
                        isCyclic = Int(truncatingIfNeeded: adj[k]) == v
                        k &+= 1
                    }
                }
                if isCyclic { cyclic.append((smallest, components)) }
                components &+= 1
            }
            if cp > 0 {
                let parent = Int(truncatingIfNeeded: calls[cp &- 1])
                if low[v] < low[parent] { low[parent] = low[v] }
            }
        }
    }

    cyclic.sort { $0.smallest < $1.smallest }
    // Breadth-first from the smallest node inside its component; `index` becomes the
    // visited mark (-1), `low` the parent, `calls` the queue.
    var cycles: [[Int32]] = []
    cycles.reserveCapacity(cyclic.count)
    for (start, c) in cyclic {
        let s = Int(truncatingIfNeeded: start)
        var head = 0
        var tail = 1
        calls[0] = start
        index[s] = -1
        var last = -1
        search: while head < tail {
            let x = Int(truncatingIfNeeded: calls[head])
            head &+= 1
            var k = Int(truncatingIfNeeded: offset[x])
            let end = Int(truncatingIfNeeded: offset[x &+ 1])
            while k < end {
                let y = Int(truncatingIfNeeded: adj[k])
                k &+= 1
                if y == s {
                    last = x
                    break search
                }
                if comp[y] == c && index[y] >= 0 {
                    index[y] = -1
                    low[y] = Int32(truncatingIfNeeded: x)
                    calls[tail] = Int32(truncatingIfNeeded: y)
                    tail &+= 1
                }
            }
        }
        // A cyclic component always leads back to its start; `last` is its final step.
        var path: [Int32] = []
        var p = last
        while p != s && p >= 0 {
            path.append(Int32(truncatingIfNeeded: p))
            p = Int(truncatingIfNeeded: low[p])
        }
        path.append(start)
        path.reverse()
        path.append(start)
        cycles.append(path)
    }

    var component: [Int32] = []
    if wantComponents {
        var ordinal = [Int32](repeating: -1, count: Int(components))
        for (i, entry) in cyclic.enumerated() { ordinal[Int(entry.component)] = Int32(i) }
        component = [Int32](repeating: -1, count: n)
        for v in 0..<n where comp[v] >= 0 { component[v] = ordinal[Int(comp[v])] }
    }
    return GateCycleScan(cycles: cycles, component: component)
}
