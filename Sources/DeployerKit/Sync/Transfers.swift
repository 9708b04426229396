/// The transfers of a session: rsync runs over its one connection, in parallel.
extension WorkerSession {
    var transfers: Transfers {
        Transfers(connection: connection, reporter: reporter, host: host, verbose: context.verbose)
    }

    /// Runs `transfers` and stops them (their rsyncs are terminated) when an interrupt arrives.
    func transferCancellable(_ list: [RsyncTransfer]) async throws -> [(name: String, stats: TransferStats)] {
        let transfers = self.transfers
        let task = Task { try await transfers.run(list) }
        interrupt?.onRaise { _ in task.cancel() }
        return try await task.value
    }

    /// Runs `transfers` to the end (in place, where stopping half-way would leave a mix).
    func transferAll(_ list: [RsyncTransfer]) async throws -> [(name: String, stats: TransferStats)] {
        try await transfers.run(list)
    }

    /// "N files, X sent" for a step's end.
    static func sentSummary(_ results: [(name: String, stats: TransferStats)]) -> String {
        let total = results.reduce(TransferStats()) { $0 + $1.stats }
        return "\(total.regularFilesTransferred) files, \(ByteCount.format(total.bytesSent)) sent"
    }
}

/// rsync runs over one connection, reporting progress and (with --verbose) itemized changes.
struct Transfers: Sendable {
    let connection: WorkerConnection
    let reporter: any SyncReporting
    let host: String
    let verbose: Bool

    /// The independent trees go in parallel over the one master connection.
    func run(_ transfers: [RsyncTransfer]) async throws -> [(name: String, stats: TransferStats)] {
        let mode: RsyncOutput = verbose ? .itemized : (reporter.wantsProgress ? .progress : .quiet)
        var stats = [TransferStats](repeating: TransferStats(), count: transfers.count)
        try await withThrowingTaskGroup(of: (Int, TransferStats).self) { group in
            for (index, transfer) in transfers.enumerated() {
                let onLine = mode == .quiet ? nil : forwarder(tree: transfer.name)
                group.addTask {
                    let result = try await connection.transfer(transfer, output: mode, onLine: onLine).stats
                    return (index, result)
                }
            }
            for try await (index, result) in group { stats[index] = result }
        }
        try Task.checkCancellation()
        return zip(transfers, stats).map { (name: $0.name, stats: $1) }
    }

    /// Forwards rsync's itemized changes and errors; its --stats block goes to the report instead.
    func forwarder(tree: String) -> @Sendable (OutputStream, String) -> Void {
        { [reporter, host] stream, line in
            if let progress = RsyncProgress.parse(line) {
                reporter.report(.progress(host: host, tree: tree, progress: progress))
                return
            }
            let itemized = line.first.map { "<>ch.*".contains($0) } ?? false
            if stream == .standardError || itemized {
                reporter.report(.output(host: host, source: tree, line: line))
            }
        }
    }
}

extension WorkerConnection {
    /// What each of `transfers` would change on the worker (rsync's itemized dry run).
    func changes(_ transfers: [RsyncTransfer], checksum: Bool) async throws -> [TreeChanges] {
        try await withThrowingTaskGroup(of: (Int, TreeChanges).self) { group in
            for (index, transfer) in transfers.enumerated() {
                group.addTask {
                    let result = try await self.transfer(transfer, output: .dryRun, checksum: checksum)
                    return (index, TreeChanges.parse(name: transfer.name, itemized: result.output))
                }
            }
            var results = [TreeChanges?](repeating: nil, count: transfers.count)
            for try await (index, changes) in group { results[index] = changes }
            return results.compactMap { $0 }
        }
    }
}
