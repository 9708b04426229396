import Foundation

/// The machine-readable report of a run (`--json`): one document on standard output.
public struct JSONRunReport: Encodable {
    public struct Transfer: Encodable {
        var name: String
        var filesUpdated: Int
        var filesDeleted: Int
        var entries: Int
        var bytesSent: Int64
        var bytesReceived: Int64
        var totalBytes: Int64
    }

    public struct Step: Encodable {
        var step: String
        var seconds: Double
    }

    public struct Worker: Encodable {
        var server: String
        var destination: String
        var ok: Bool
        var exitCode: Int32
        var release: String?
        var previousRelease: String?
        var services: [String]?
        var downtimeSeconds: Double?
        var pruned: [String]?
        var transfers: [Transfer]?
        var steps: [Step]?
        var totalSeconds: Double?
        var error: String?
        var workerState: String?
        var dryRun: DryRunReport?
        var handover: SyncReport.Handover?
        var finishedDrains: [DrainRecord]?
        var warnings: [String]?
        var hooks: [HookRun]?
    }

    var command: String
    var site: String
    var ok: Bool
    var exitCode: Int32
    /// Why the run failed before any worker was reached (bad input, usage); nil otherwise.
    var error: String?
    var workers: [Worker]

    /// The report of a run that ended before any worker was reached: `--json` still gets one
    /// document, with the one-line error and the exit status.
    public init(command: String, site: String?, exitCode: Int32, error: String) {
        self.command = command
        self.site = site ?? ""
        ok = false
        self.exitCode = exitCode
        self.error = error
        workers = []
    }

    public init(command: String, site: String, outcomes: [WorkerOutcome]) {
        self.command = command
        self.site = site
        exitCode = FleetRunner.exitCode(outcomes)
        ok = exitCode == 0
        workers = outcomes.map { outcome in
            let report = outcome.report
            return Worker(
                server: outcome.worker.server, destination: outcome.worker.destination, ok: outcome.succeeded,
                exitCode: outcome.exitCode, release: report?.release, previousRelease: report?.previousRelease,
                services: report?.runningServices, downtimeSeconds: report?.downtimeSeconds, pruned: report?.pruned,
                transfers: report?.transfers.map {
                    Transfer(name: $0.name, filesUpdated: $0.stats.regularFilesTransferred, filesDeleted: $0.stats.deletedFiles,
                             entries: $0.stats.files, bytesSent: $0.stats.bytesSent, bytesReceived: $0.stats.bytesReceived,
                             totalBytes: $0.stats.totalFileSize)
                },
                steps: report?.stepSeconds.map { Step(step: $0.step.rawValue, seconds: ($0.seconds * 1000).rounded() / 1000) },
                totalSeconds: report.map { ($0.totalSeconds * 1000).rounded() / 1000 },
                error: outcome.problem, workerState: (outcome.error as? SyncFailure)?.workerState.description, dryRun: report?.dryRun,
                handover: report?.handover, finishedDrains: report?.finishedDrains, warnings: report?.warnings,
                hooks: report?.hooks ?? (outcome.error as? SyncFailure)?.hooks)
        }
    }
}

/// Renders reports as JSON for `--json`.
public enum JSONOutput {
    /// Pretty JSON with snake_case keys and ISO 8601 dates, as scripts expect.
    public static func render<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }
}
