/// Layers the sources of configuration: flags > `FRAPPE_DEPLOYER_*` environment > file > defaults.
///
/// Scalars take the value of the highest layer that states one. Lists (includes, excludes) are
/// combined across layers in that order, without repeats, since each layer adds to what is synced.
public enum SettingsResolver {
    public static let environmentPrefix = "FRAPPE_DEPLOYER_"

    /// Environment variables the tool reads, and the key each stands for.
    public static let environmentKeys: [(variable: String, key: String)] = [
        ("FRAPPE_DEPLOYER_CONFIG_PATH", "config_path"),
        ("FRAPPE_DEPLOYER_SITE_NAME", "site_name"),
        ("FRAPPE_DEPLOYER_BENCHES_PATH", "benches_path"),
        ("FRAPPE_DEPLOYER_SERVER", "remote_worker.server"),
        ("FRAPPE_DEPLOYER_SSH_USER", "remote_worker.ssh_user"),
        ("FRAPPE_DEPLOYER_SSH_PORT", "remote_worker.ssh_port"),
        ("FRAPPE_DEPLOYER_WORKSPACE_PATH", "remote_worker.workspace_path"),
        ("FRAPPE_DEPLOYER_SSH_CONFIG", "remote_worker.ssh_config"),
        ("FRAPPE_DEPLOYER_INCLUDE_DIRS", "remote_worker.include_dirs (comma-separated)"),
        ("FRAPPE_DEPLOYER_INCLUDE_FILES", "remote_worker.include_files (comma-separated)"),
        ("FRAPPE_DEPLOYER_EXCLUDE_PATTERNS", "remote_worker.exclude_patterns (comma-separated)"),
        ("FRAPPE_DEPLOYER_STRATEGY", "remote_worker.strategy"),
        ("FRAPPE_DEPLOYER_KEEP_RELEASES", "remote_worker.keep_releases"),
        ("FRAPPE_DEPLOYER_STOP_TIMEOUT", "remote_worker.stop_timeout"),
        ("FRAPPE_DEPLOYER_LOCK_WAIT", "remote_worker.lock_wait"),
        ("FRAPPE_DEPLOYER_BWLIMIT", "remote_worker.bwlimit"),
        ("FRAPPE_DEPLOYER_SETTLE", "remote_worker.settle"),
        ("FRAPPE_DEPLOYER_PHASE_TIMEOUT", "remote_worker.phase_timeout"),
        ("FRAPPE_DEPLOYER_COMPRESS", "remote_worker.compress"),
        ("FRAPPE_DEPLOYER_RESTRICTED_KEY", "remote_worker.restricted_key"),
    ]

    /// The config file path named by the environment, if any (flags win over it).
    public static func configPath(flag: String?, environment: [String: String]) -> String? {
        flag ?? environment["FRAPPE_DEPLOYER_CONFIG_PATH"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Reads the `FRAPPE_DEPLOYER_*` layer; a malformed value is an error naming the variable.
    public static func environmentLayer(_ environment: [String: String]) throws(ConfigError) -> (siteName: String?, benchesPath: String?, worker: RemoteWorkerConfig, warnings: [String]) {
        func value(_ name: String) -> String? {
            guard let raw = environment[name], !raw.isEmpty else { return nil }
            return raw
        }
        func list(_ name: String) -> [String] {
            value(name).map { $0.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty } } ?? []
        }
        func integer(_ name: String) throws(ConfigError) -> Int? {
            guard let raw = value(name) else { return nil }
            guard let parsed = Int(raw.trimmed) else {
                throw .wrongType(source: "environment", keyPath: name, expected: "an integer", found: "'\(raw)'")
            }
            return parsed
        }
        let port = try integer("FRAPPE_DEPLOYER_SSH_PORT")
        // Unknown FRAPPE_DEPLOYER_* variables are most likely typos: said, never silently ignored.
        // A warning, not an error, since other tooling may share the prefix.
        let known = Set(environmentKeys.map(\.variable))
        let warnings = environment.keys.sorted().filter { $0.hasPrefix(environmentPrefix) && !known.contains($0) }.map {
            "environment variable \($0) is not one frappe-deployer reads; it is ignored (known: \(environmentKeys.map(\.variable).joined(separator: ", ")))"
        }
        let worker = RemoteWorkerConfig(
            server: value("FRAPPE_DEPLOYER_SERVER"), sshUser: value("FRAPPE_DEPLOYER_SSH_USER"), sshPort: port,
            workspacePath: value("FRAPPE_DEPLOYER_WORKSPACE_PATH"), sshConfig: value("FRAPPE_DEPLOYER_SSH_CONFIG"),
            includeDirs: list("FRAPPE_DEPLOYER_INCLUDE_DIRS"), includeFiles: list("FRAPPE_DEPLOYER_INCLUDE_FILES"),
            excludePatterns: list("FRAPPE_DEPLOYER_EXCLUDE_PATTERNS"), strategy: value("FRAPPE_DEPLOYER_STRATEGY"),
            keepReleases: try integer("FRAPPE_DEPLOYER_KEEP_RELEASES"), stopTimeout: try integer("FRAPPE_DEPLOYER_STOP_TIMEOUT"),
            lockWait: try integer("FRAPPE_DEPLOYER_LOCK_WAIT"), bandwidthLimit: try integer("FRAPPE_DEPLOYER_BWLIMIT"),
            settle: try integer("FRAPPE_DEPLOYER_SETTLE"), compress: value("FRAPPE_DEPLOYER_COMPRESS"),
            phaseTimeout: try integer("FRAPPE_DEPLOYER_PHASE_TIMEOUT"), restrictedKey: value("FRAPPE_DEPLOYER_RESTRICTED_KEY"))
        return (value("FRAPPE_DEPLOYER_SITE_NAME"), value("FRAPPE_DEPLOYER_BENCHES_PATH"), worker, warnings)
    }

    /// Combines the layers and checks every value; `home` expands a leading `~`.
    public static func resolve(
        flags: SyncOverrides, environment: [String: String], file: ConfigFile?, home: String
    ) throws(ConfigError) -> SyncSettings {
        let env = try environmentLayer(environment)
        let fileSource = file?.path ?? "config"

        // Site name: the argument and the file must agree when both are given.
        if let argument = flags.siteName, let named = file?.siteName, argument != named {
            throw .conflict(message: "site name \(argument) differs from site_name = \"\(named)\" in \(fileSource): give one or make them agree")
        }
        guard let siteName = flags.siteName ?? env.siteName ?? file?.siteName else {
            throw .missing(keyPath: "site name", hint: "give SITE_NAME, or site_name in the config file")
        }
        if let problem = InputRules.plainNameProblem(siteName) {
            throw .invalidValue(source: source(flag: flags.siteName, env: env.siteName, file: fileSource, argument: "SITE_NAME", variable: "FRAPPE_DEPLOYER_SITE_NAME"), keyPath: "site_name",
                                problem: "site name '\(siteName.escapedForMessage)' is not valid: \(problem)")
        }

        let benches = expand(flags.benchesPath ?? env.benchesPath ?? file?.benchesPath ?? "~/frappe/sites", home: home)
        guard benches.hasPrefix("/") else {
            throw .invalidValue(source: "benches_path", keyPath: "benches_path", problem: "'\(benches)' must be an absolute path (or start with ~)")
        }

        // Which workers: --server (repeatable) or FRAPPE_DEPLOYER_SERVER (comma-separated) name them,
        // each taking its settings from the file's entry with that server (or the file's only
        // entry); otherwise every [[remote_worker]] entry of the file.
        let fileEntries = file?.remoteWorkers ?? []
        let envServers = (env.worker.server ?? "").split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
        let flagServers = flags.servers.isEmpty ? (flags.worker.server.map { [$0] } ?? []) : flags.servers
        var envWorker = env.worker
        envWorker.server = nil
        var flagWorker = flags.worker
        flagWorker.server = nil
        let entries: [(file: RemoteWorkerConfig, server: String?, origin: String)]
        if !flagServers.isEmpty || !envServers.isEmpty {
            let named = flagServers.isEmpty ? envServers : flagServers
            let origin = flagServers.isEmpty ? "environment FRAPPE_DEPLOYER_SERVER" : "option --server"
            entries = named.map { server in
                (fileEntries.first { $0.server?.trimmed == server.trimmed } ?? (fileEntries.count == 1 ? fileEntries[0] : RemoteWorkerConfig()), server, origin)
            }
        } else if fileEntries.isEmpty {
            entries = [(RemoteWorkerConfig(), nil, fileSource)]
        } else {
            entries = fileEntries.enumerated().map { index, entry in
                (entry, nil, fileEntries.count == 1 ? "\(fileSource) remote_worker.server" : "\(fileSource) remote_worker[\(index)].server")
            }
        }
        var workers: [WorkerSettings] = []
        for entry in entries {
            let worker = try resolveWorker(file: entry.file, env: envWorker, flags: flags, flagWorker: flagWorker,
                                           server: entry.server, serverOrigin: entry.origin, fileSource: fileSource, siteName: siteName, home: home)
            if let twin = workers.first(where: { $0.server == worker.server && $0.sshPort == worker.sshPort }) {
                throw .conflict(message: "worker \(twin.server) port \(twin.sshPort) is listed twice: name each worker once")
            }
            workers.append(worker)
        }
        var settings = SyncSettings(siteName: siteName, benchesPath: trimTrailingSlash(benches), workers: workers)
        settings.warnings = env.warnings
        settings.parallel = try positive(flags.parallel ?? file?.parallel, name: "parallel", source: flags.parallel != nil ? "option --parallel" : fileSource) ?? 4
        settings.failFast = flags.failFast || (file?.failFast ?? false)
        settings.rollout = try rollout(flags: flags, file: file, fileSource: fileSource, workers: workers.count)
        settings.hooks = try hooks(flags: flags, file: file, fileSource: fileSource)
        settings.watch = try watch(flags: flags, file: file, fileSource: fileSource)
        return settings
    }

    /// `remote-worker watch`'s settings: flags over `[watch]` over defaults.
    private static func watch(flags: SyncOverrides, file: ConfigFile?, fileSource: String) throws(ConfigError) -> ReleaseWatch.Options {
        let (given, stated) = (flags.fleet, file?.fleet ?? FleetLayer())
        func value(_ keyPath: KeyPath<FleetLayer, Int?>, key: String, option: String, minimum: Int) throws(ConfigError) -> Int? {
            guard let value = given[keyPath: keyPath] ?? stated[keyPath: keyPath] else { return nil }
            guard value >= minimum else {
                throw .invalidValue(source: given[keyPath: keyPath] != nil ? "option \(option)" : fileSource, keyPath: "watch.\(key)",
                                    problem: "\(value) is below the minimum of \(minimum)")
            }
            return value
        }
        var options = ReleaseWatch.Options()
        options.debounce = try value(\.watchDebounce, key: "debounce", option: "--debounce", minimum: 0) ?? options.debounce
        options.poll = try value(\.watchPoll, key: "poll", option: "--poll", minimum: 1) ?? options.poll
        options.retryMax = try value(\.watchRetryMax, key: "retry_max", option: "--retry-max", minimum: 5) ?? options.retryMax
        options.pollOnly = given.watchPollOnly ?? stated.watchPollOnly ?? false
        return options
    }

    /// Canary and batches: flags over the file; counts checked against the workers of the run.
    private static func rollout(flags: SyncOverrides, file: ConfigFile?, fileSource: String, workers: Int) throws(ConfigError) -> Rollout {
        func origin(_ flag: Int?, _ option: String) -> String { flag != nil ? "option \(option)" : fileSource }
        var rollout = Rollout()
        if let canary = flags.fleet.canary ?? file?.fleet.canary {
            let source = origin(flags.fleet.canary, "--canary")
            guard canary >= 1 else { throw .invalidValue(source: source, keyPath: "canary", problem: "\(canary) is below the minimum of 1") }
            guard canary < workers else {
                throw .invalidValue(source: source, keyPath: "canary",
                                    problem: "\(canary) canary workers leave none to follow them (this run has \(workers)): give fewer, or more workers")
            }
            rollout.canary = canary
        }
        rollout.batchSize = try positive(flags.fleet.batchSize ?? file?.fleet.batchSize, name: "batch_size", source: origin(flags.fleet.batchSize, "--batch-size"))
        if let wait = flags.fleet.batchWait ?? file?.fleet.batchWait {
            guard wait >= 0 else {
                throw .invalidValue(source: origin(flags.fleet.batchWait, "--batch-wait"), keyPath: "batch_wait", problem: "\(wait) is below the minimum of 0")
            }
            rollout.batchWait = wait
        }
        return rollout
    }

    /// Hooks: each command from the flags, else the file; none at all with --no-hooks.
    private static func hooks(flags: SyncOverrides, file: ConfigFile?, fileSource: String) throws(ConfigError) -> Hooks {
        if flags.noHooks { return Hooks() }
        let stated = file?.fleet ?? FleetLayer()
        func command(_ name: HookName) -> String? { flags.fleet.hook(name) ?? stated.hook(name) }
        var hooks = Hooks(beforeSync: command(.beforeSync), afterSwitch: command(.afterSwitch), onFailure: command(.onFailure))
        for name in HookName.allCases where command(name)?.trimmed.isEmpty == true {
            let source = flags.fleet.hook(name) != nil ? "option --\(name.rawValue.replacingOccurrences(of: "_", with: "-"))" : fileSource
            throw .invalidValue(source: source, keyPath: "hooks.\(name.rawValue)", problem: "the command is empty: give a command, or leave the hook out")
        }
        if let timeout = try positive(flags.fleet.hookTimeout ?? file?.fleet.hookTimeout, name: "hooks.timeout",
                                      source: flags.fleet.hookTimeout != nil ? "option --hook-timeout" : fileSource) {
            hooks.timeout = timeout
        }
        return hooks
    }

    private static func positive(_ value: Int?, name: String, source: String) throws(ConfigError) -> Int? {
        guard let value else { return nil }
        guard value >= 1 else { throw .invalidValue(source: source, keyPath: name, problem: "\(value) is below the minimum of 1") }
        return value
    }

    /// One worker's settings from its file entry, the environment and the flags.
    private static func resolveWorker(
        file fileWorker: RemoteWorkerConfig, env: RemoteWorkerConfig, flags: SyncOverrides, flagWorker: RemoteWorkerConfig,
        server named: String?, serverOrigin: String, fileSource: String, siteName: String, home: String
    ) throws(ConfigError) -> WorkerSettings {
        let layers = [fileWorker, env, flagWorker]
        func pick<T>(_ keyPath: KeyPath<RemoteWorkerConfig, T?>) -> T? {
            layers.reversed().lazy.compactMap { $0[keyPath: keyPath] }.first
        }
        func origin<T>(_ keyPath: KeyPath<RemoteWorkerConfig, T?>, flag: String, variable: String, key: String) -> String {
            if flagWorker[keyPath: keyPath] != nil { return "option \(flag)" }
            if env[keyPath: keyPath] != nil { return "environment \(variable)" }
            return "\(fileSource) remote_worker.\(key)"
        }

        guard let server = (named ?? fileWorker.server)?.trimmed, !server.isEmpty else {
            throw .missing(keyPath: "worker server", hint: "give --server, FRAPPE_DEPLOYER_SERVER, or server in [remote_worker] of the config file")
        }
        if let problem = InputRules.serverProblem(server) {
            throw .invalidValue(source: serverOrigin, keyPath: "server",
                                problem: "server '\(server.escapedForMessage)' is not valid: \(problem)")
        }
        let user = pick(\.sshUser) ?? "frappe"
        if let problem = InputRules.userProblem(user) {
            throw .invalidValue(source: origin(\.sshUser, flag: "--ssh-user", variable: "FRAPPE_DEPLOYER_SSH_USER", key: "ssh_user"), keyPath: "ssh_user",
                                problem: "ssh user '\(user.escapedForMessage)' is not valid: \(problem)")
        }
        let port = pick(\.sshPort) ?? 22
        if let problem = InputRules.portProblem(port) {
            throw .invalidValue(source: origin(\.sshPort, flag: "--ssh-port", variable: "FRAPPE_DEPLOYER_SSH_PORT", key: "ssh_port"), keyPath: "ssh_port", problem: problem)
        }
        let workspace = pick(\.workspacePath).map { trimTrailingSlash($0) } ?? "/home/\(user)/frappe/sites/\(siteName)/workspace"
        if let problem = InputRules.remotePathProblem(workspace) {
            throw .invalidValue(source: origin(\.workspacePath, flag: "--workspace-path", variable: "FRAPPE_DEPLOYER_WORKSPACE_PATH", key: "workspace_path"),
                                keyPath: "workspace_path", problem: "'\(workspace.escapedForMessage)': \(problem)")
        }
        if let problem = InputRules.workspaceSiteProblem(workspace, site: siteName) {
            throw .invalidValue(source: origin(\.workspacePath, flag: "--workspace-path", variable: "FRAPPE_DEPLOYER_WORKSPACE_PATH", key: "workspace_path"),
                                keyPath: "workspace_path", problem: "'\(workspace.escapedForMessage)': \(problem)")
        }
        let sshConfig = pick(\.sshConfig).map { expand($0, home: home) }
        let restrictedKey = pick(\.restrictedKey).map { expand($0, home: home) }
        if let key = restrictedKey, let problem = InputRules.remotePathProblem(key) {
            throw .invalidValue(source: origin(\.restrictedKey, flag: "--restricted-key", variable: "FRAPPE_DEPLOYER_RESTRICTED_KEY", key: "restricted_key"),
                                keyPath: "restricted_key", problem: "'\(key.escapedForMessage)': \(problem)")
        }

        // Linear in the number of entries: the first of equal ones is kept, in order.
        var includeDirs = UniqueList<String>()
        var includeFiles = UniqueList<String>()
        var excludes = UniqueList<String>()
        for (layer, name) in zip(layers, [fileSource, "environment", "command line"]) {
            for dir in layer.includeDirs {
                if let problem = InputRules.includePathProblem(dir) {
                    throw .invalidValue(source: name, keyPath: "include_dirs", problem: "'\(dir.escapedForMessage)': \(problem)")
                }
                includeDirs.append(InputRules.normalizedIncludePath(dir))
            }
            for path in layer.includeFiles {
                if let problem = InputRules.includePathProblem(path) {
                    throw .invalidValue(source: name, keyPath: "include_files", problem: "'\(path.escapedForMessage)': \(problem)")
                }
                includeFiles.append(InputRules.normalizedIncludePath(path))
            }
            for pattern in layer.excludePatterns {
                do {
                    excludes.append(try ExcludeRules.normalizedPattern(pattern))
                } catch {
                    throw .invalidValue(source: name, keyPath: "exclude_patterns", problem: error.problem)
                }
            }
        }
        var worker = WorkerSettings(
            server: server, sshUser: user, sshPort: port, workspacePath: workspace, sshConfig: sshConfig,
            acceptNewHostKey: flags.acceptNewHostKey, includeDirs: includeDirs.elements, includeFiles: includeFiles.elements,
            excludePatterns: excludes.elements)
        if let problem = ExcludeRules.sizeProblem(excludes.elements) {
            throw .invalidValue(source: "exclude_patterns", keyPath: "exclude_patterns", problem: problem)
        }

        if let raw = pick(\.strategy) {
            guard let strategy = SyncStrategy(rawValue: raw) else {
                throw .invalidValue(source: origin(\.strategy, flag: "--strategy", variable: "FRAPPE_DEPLOYER_STRATEGY", key: "strategy"),
                                    keyPath: "strategy", problem: "'\(raw.escapedForMessage)' is not a strategy; use staged or in-place")
            }
            worker.strategy = strategy
        }
        func count(_ keyPath: KeyPath<RemoteWorkerConfig, Int?>, flag: String, variable: String, key: String, minimum: Int) throws(ConfigError) -> Int? {
            guard let value = pick(keyPath) else { return nil }
            guard value >= minimum else {
                throw .invalidValue(source: origin(keyPath, flag: flag, variable: variable, key: key), keyPath: key,
                                    problem: "\(value) is below the minimum of \(minimum)")
            }
            return value
        }
        worker.keepReleases = try count(\.keepReleases, flag: "--keep-releases", variable: "FRAPPE_DEPLOYER_KEEP_RELEASES", key: "keep_releases", minimum: 1) ?? 3
        worker.stopTimeout = try count(\.stopTimeout, flag: "--stop-timeout", variable: "FRAPPE_DEPLOYER_STOP_TIMEOUT", key: "stop_timeout", minimum: 0)
        worker.lockWait = try count(\.lockWait, flag: "--lock-wait", variable: "FRAPPE_DEPLOYER_LOCK_WAIT", key: "lock_wait", minimum: 0) ?? 0
        worker.phaseTimeout = try count(\.phaseTimeout, flag: "--phase-timeout", variable: "FRAPPE_DEPLOYER_PHASE_TIMEOUT", key: "phase_timeout",
                                        minimum: 10) ?? worker.phaseTimeout
        worker.bandwidthLimit = try count(\.bandwidthLimit, flag: "--bwlimit", variable: "FRAPPE_DEPLOYER_BWLIMIT", key: "bwlimit", minimum: 1)
        worker.settleSeconds = try count(\.settle, flag: "--settle", variable: "FRAPPE_DEPLOYER_SETTLE", key: "settle", minimum: 0) ?? 2
        worker.scheduler = pick(\.scheduler) ?? true
        if let raw = pick(\.compress) {
            guard let choice = CompressChoice(rawValue: raw) else {
                throw .invalidValue(source: origin(\.compress, flag: "--compress", variable: "FRAPPE_DEPLOYER_COMPRESS", key: "compress"),
                                    keyPath: "compress", problem: "'\(raw.escapedForMessage)' is not a compression; use auto, zstd, lz4 or off")
            }
            worker.compress = choice
        }
        if let streams = try count(\.streams, flag: "--streams", variable: "FRAPPE_DEPLOYER_STREAMS", key: "streams", minimum: 1) {
            guard streams <= 2 else {
                throw .invalidValue(source: origin(\.streams, flag: "--streams", variable: "FRAPPE_DEPLOYER_STREAMS", key: "streams"), keyPath: "streams",
                                    problem: "\(streams) is above the maximum of 2 (env/ and the rest of a release)")
            }
            worker.releaseStreams = streams
        }
        var sshOptions = UniqueList<String>()
        for layer in layers {
            for option in layer.sshOptions {
                if let problem = SSHOptionRules.problem(option) {
                    throw .invalidValue(source: layer == flagWorker ? "option --ssh-option" : fileSource, keyPath: "ssh_options", problem: problem)
                }
                sshOptions.append(option)
            }
        }
        worker.sshOptions = sshOptions.elements
        worker.restrictedKey = restrictedKey
        return worker
    }

    private static func source(flag: String?, env: String?, file: String, argument: String, variable: String) -> String {
        if flag != nil { return argument }
        if env != nil { return "environment \(variable)" }
        return file
    }

    public static func expand(_ path: String, home: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") { return trimTrailingSlash(home) + path.dropFirst() }
        return path
    }

    static func trimTrailingSlash(_ path: String) -> String {
        var path = path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }
}

extension String {
    var trimmed: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }

    /// Shows control characters visibly, so a one-line error stays one line.
    var escapedForMessage: String {
        unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? $0.escaped(asASCII: true) : String($0) }.joined()
    }
}

/// A list that keeps the first of equal elements, in order; appending is constant time.
struct UniqueList<Element: Hashable> {
    private(set) var elements: [Element] = []
    private var seen: Set<Element> = []

    mutating func append(_ element: Element) {
        if seen.insert(element).inserted { elements.append(element) }
    }
}
