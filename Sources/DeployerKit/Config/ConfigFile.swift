import Foundation
import TOMLKit

/// One worker's settings as one layer (file, environment or flags) states them; nil means "not said".
public struct RemoteWorkerConfig: Sendable, Equatable {
    public var server: String?
    public var sshUser: String?
    public var sshPort: Int?
    public var workspacePath: String?
    public var sshConfig: String?
    public var includeDirs: [String]
    public var includeFiles: [String]
    public var excludePatterns: [String]
    public var sshOptions: [String]
    public var strategy: String?
    public var keepReleases: Int?
    public var stopTimeout: Int?
    public var lockWait: Int?
    public var bandwidthLimit: Int?
    /// Seconds services must stay up after a start (health check).
    public var settle: Int?
    /// Whether this worker runs `schedule` (one scheduler per site).
    public var scheduler: Bool?
    /// Parallel rsync streams for a staged copy of a release (1 or 2).
    public var streams: Int?
    /// rsync compression: auto, zstd, lz4 or off.
    public var compress: String?
    /// The base of every remote phase's time limit, in seconds.
    public var phaseTimeout: Int?
    /// The private key of a least-privilege key (`remote-worker authorize`).
    public var restrictedKey: String?

    public init(
        server: String? = nil, sshUser: String? = nil, sshPort: Int? = nil, workspacePath: String? = nil,
        sshConfig: String? = nil, includeDirs: [String] = [], includeFiles: [String] = [],
        excludePatterns: [String] = [], sshOptions: [String] = [], strategy: String? = nil, keepReleases: Int? = nil,
        stopTimeout: Int? = nil, lockWait: Int? = nil, bandwidthLimit: Int? = nil, settle: Int? = nil, scheduler: Bool? = nil,
        streams: Int? = nil, compress: String? = nil, phaseTimeout: Int? = nil, restrictedKey: String? = nil
    ) {
        self.server = server
        self.sshUser = sshUser
        self.sshPort = sshPort
        self.workspacePath = workspacePath
        self.sshConfig = sshConfig
        self.includeDirs = includeDirs
        self.includeFiles = includeFiles
        self.excludePatterns = excludePatterns
        self.sshOptions = sshOptions
        self.strategy = strategy
        self.keepReleases = keepReleases
        self.stopTimeout = stopTimeout
        self.lockWait = lockWait
        self.bandwidthLimit = bandwidthLimit
        self.settle = settle
        self.scheduler = scheduler
        self.streams = streams
        self.compress = compress
        self.phaseTimeout = phaseTimeout
        self.restrictedKey = restrictedKey
    }
}

/// The TOML configuration file: the site, the local benches root and the site's remote workers.
///
/// `[remote_worker]` (one table) or `[[remote_worker]]` (an array of tables, one per worker).
public struct ConfigFile: Sendable, Equatable {
    public var path: String
    public var siteName: String?
    public var benchesPath: String?
    public var remoteWorkers: [RemoteWorkerConfig]
    /// How many workers sync at once.
    public var parallel: Int?
    /// Stop starting workers after the first failure.
    public var failFast: Bool?
    /// `canary`, `batch_size`, `batch_wait`, `[hooks]` (before_sync, after_switch, on_failure, timeout)
    /// and `[watch]` (debounce, poll, retry_max, poll_only).
    public var fleet = FleetLayer()

    static let topLevelKeys = ["site_name", "benches_path", "remote_worker", "parallel", "fail_fast", "canary", "batch_size", "batch_wait", "hooks",
                               "watch"]
    static let hookKeys = ["before_sync", "after_switch", "on_failure", "timeout"]
    static let watchKeys = ["debounce", "poll", "retry_max", "poll_only"]
    static let workerKeys = [
        "server", "ssh_user", "ssh_port", "workspace_path", "ssh_config",
        "include_dirs", "include_files", "exclude_patterns", "ssh_options",
        "strategy", "keep_releases", "stop_timeout", "lock_wait", "bwlimit", "settle", "scheduler", "streams", "compress", "phase_timeout",
        "restricted_key",
    ]

    public init(path: String, siteName: String? = nil, benchesPath: String? = nil, remoteWorkers: [RemoteWorkerConfig] = []) {
        self.path = path
        self.siteName = siteName
        self.benchesPath = benchesPath
        self.remoteWorkers = remoteWorkers
    }

    /// Reads and strictly checks the file at `path`: unknown keys and wrong types are errors.
    public static func load(path: String) throws(ConfigError) -> ConfigFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .fileNotFound(path: path)
        }
        if isDirectory.boolValue { throw .unreadable(path: path, reason: "it is a directory") }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, reason: "not readable UTF-8 text (\(error.localizedDescription))")
        }
        return try parse(text, path: path)
    }

    /// Parses TOML text; `path` only names the source in errors.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> ConfigFile {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw .syntax(path: path, line: error.source.begin.line, column: error.source.begin.column, message: error.description)
        } catch {
            throw .syntax(path: path, line: 0, column: 0, message: String(describing: error))
        }
        let reader = TableReader(source: path, prefix: "", table: table)
        try reader.rejectUnknownKeys(allowed: topLevelKeys)
        var file = ConfigFile(path: path)
        file.siteName = try reader.string("site_name")
        file.benchesPath = try reader.string("benches_path")
        file.parallel = try reader.int("parallel")
        file.failFast = try reader.bool("fail_fast")
        file.fleet.canary = try reader.int("canary")
        file.fleet.batchSize = try reader.int("batch_size")
        file.fleet.batchWait = try reader.int("batch_wait")
        if let hooks = try reader.subtable("hooks", allowed: hookKeys) {
            file.fleet.beforeSync = try hooks.string("before_sync")
            file.fleet.afterSwitch = try hooks.string("after_switch")
            file.fleet.onFailure = try hooks.string("on_failure")
            file.fleet.hookTimeout = try hooks.int("timeout")
        }
        if let watch = try reader.subtable("watch", allowed: watchKeys) {
            file.fleet.watchDebounce = try watch.int("debounce")
            file.fleet.watchPoll = try watch.int("poll")
            file.fleet.watchRetryMax = try watch.int("retry_max")
            file.fleet.watchPollOnly = try watch.bool("poll_only")
        }
        if let value = table["remote_worker"] {
            if let workerTable = value.table {
                file.remoteWorkers = [try worker(TableReader(source: path, prefix: "remote_worker.", table: workerTable))]
            } else if let array = value.array {
                for (index, element) in array.enumerated() {
                    guard let workerTable = element.table else {
                        throw .wrongType(source: path, keyPath: "remote_worker[\(index)]", expected: "a table ([[remote_worker]])", found: describe(element.type))
                    }
                    file.remoteWorkers.append(try worker(TableReader(source: path, prefix: "remote_worker[\(index)].", table: workerTable)))
                }
            } else {
                throw .wrongType(source: path, keyPath: "remote_worker", expected: "a table ([remote_worker] or [[remote_worker]])", found: describe(value.type))
            }
        }
        return file
    }

    private static func worker(_ reader: TableReader) throws(ConfigError) -> RemoteWorkerConfig {
        try reader.rejectUnknownKeys(allowed: workerKeys)
        return RemoteWorkerConfig(
            server: try reader.string("server"),
            sshUser: try reader.string("ssh_user"),
            sshPort: try reader.int("ssh_port"),
            workspacePath: try reader.string("workspace_path"),
            sshConfig: try reader.string("ssh_config"),
            includeDirs: try reader.strings("include_dirs"),
            includeFiles: try reader.strings("include_files"),
            excludePatterns: try reader.strings("exclude_patterns"),
            sshOptions: try reader.strings("ssh_options"),
            strategy: try reader.string("strategy"),
            keepReleases: try reader.int("keep_releases"),
            stopTimeout: try reader.int("stop_timeout"),
            lockWait: try reader.int("lock_wait"),
            bandwidthLimit: try reader.int("bwlimit"),
            settle: try reader.int("settle"),
            scheduler: try reader.bool("scheduler"),
            streams: try reader.int("streams"),
            compress: try reader.string("compress"),
            phaseTimeout: try reader.int("phase_timeout"),
            restrictedKey: try reader.string("restricted_key")
        )
    }

    static func describe(_ type: TOMLType) -> String {
        switch type {
        case .table: "a table"
        case .array: "an array"
        case .int: "an integer"
        case .double: "a floating-point number"
        default: "a \(type)"
        }
    }
}

/// Typed, strict access to one TOML table, naming the full key path in every error.
private struct TableReader {
    let source: String
    let prefix: String
    let table: TOMLTable

    func rejectUnknownKeys(allowed: [String]) throws(ConfigError) {
        for key in table.keys.sorted() where !allowed.contains(key) {
            throw .unknownKey(source: source, keyPath: prefix + key, allowed: allowed)
        }
    }

    /// The table `[key]` as a reader of its own, its keys checked against `allowed`; nil when absent.
    func subtable(_ key: String, allowed: [String]) throws(ConfigError) -> TableReader? {
        guard let value = table[key] else { return nil }
        guard let inner = value.table else {
            throw .wrongType(source: source, keyPath: prefix + key, expected: "a table ([\(prefix + key)])", found: ConfigFile.describe(value.type))
        }
        let reader = TableReader(source: source, prefix: prefix + key + ".", table: inner)
        try reader.rejectUnknownKeys(allowed: allowed)
        return reader
    }

    func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else {
            throw .wrongType(source: source, keyPath: prefix + key, expected: "a string", found: ConfigFile.describe(value.type))
        }
        return string
    }

    func int(_ key: String) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard value.type == .int, let int = value.int else {
            throw .wrongType(source: source, keyPath: prefix + key, expected: "an integer", found: ConfigFile.describe(value.type))
        }
        return int
    }

    func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard value.type == .bool, let bool = value.bool else {
            throw .wrongType(source: source, keyPath: prefix + key, expected: "true or false", found: ConfigFile.describe(value.type))
        }
        return bool
    }

    func strings(_ key: String) throws(ConfigError) -> [String] {
        guard let value = table[key] else { return [] }
        guard let array = value.array else {
            throw .wrongType(source: source, keyPath: prefix + key, expected: "an array of strings", found: ConfigFile.describe(value.type))
        }
        var result: [String] = []
        for (index, element) in array.enumerated() {
            guard let string = element.string else {
                throw .wrongType(
                    source: source, keyPath: "\(prefix)\(key)[\(index)]", expected: "a string",
                    found: ConfigFile.describe(element.type))
            }
            result.append(string)
        }
        return result
    }
}
