/// In which waves a fleet's workers go: first `canary` workers, which must all succeed (their
/// switch's checks passed) before any other starts; then the rest in batches of `batchSize`,
/// `batchWait` seconds apart. A failed wave stops the waves after it (like Kamal's boot limit and
/// wait). Without either, one wave: every worker, `parallel` at a time.
public struct Rollout: Sendable, Equatable {
    public var canary = 0
    public var batchSize: Int?
    public var batchWait = 0

    public init(canary: Int = 0, batchSize: Int? = nil, batchWait: Int = 0) {
        self.canary = canary
        self.batchSize = batchSize
        self.batchWait = batchWait
    }

    /// The workers' indices, wave by wave, in the order the workers are listed.
    public func waves(count: Int) -> [Wave] {
        var waves: [Wave] = []
        let canaries = min(canary, count)
        if canaries > 0 { waves.append(Wave(name: canaries == 1 ? "canary" : "canaries", workers: Array(0..<canaries), isCanary: true)) }
        let rest = Array(canaries..<count)
        guard let batchSize, batchSize < rest.count else {
            if !rest.isEmpty { waves.append(Wave(name: waves.isEmpty ? "all" : "the rest", workers: rest)) }
            return waves
        }
        for start in stride(from: 0, to: rest.count, by: batchSize) {
            let number = start / batchSize + 1
            waves.append(Wave(name: "batch \(number)", workers: Array(rest[start..<min(start + batchSize, rest.count)])))
        }
        return waves
    }

    /// Workers that go together.
    public struct Wave: Sendable, Equatable {
        public var name: String
        public var workers: [Int]
        /// The canaries: their jobs are checked before the next wave starts.
        public var isCanary = false
    }
}
