import DeployerKit
import Foundation
import Subprocess
import Synchronization

/// One worker host of the testbed (`scripts/testbed.sh`): a network namespace with its own
/// address, sshd, Docker engine and /home. Brought up by `up`, removed by `down` or on release.
public final class TestbedWorker: @unchecked Sendable {
    public let name: String
    public let address: String
    /// The ssh_config that reaches this worker (client key, pinned known_hosts).
    public let sshConfig: String
    public let knownHosts: String
    /// The worker's /home as seen from the main server's side (the tests' filesystem view).
    public let homeOnHost: String
    public let dockerHost: String
    /// The testbed's own directory for this worker (its daemons' pid files and logs).
    public let directory: String
    private var isUp = true

    /// Why integration tests cannot run here, or nil when they can.
    public static var unavailableReason: String? {
        if getuid() != 0 { return "integration tests need root (network namespaces, sshd, dockerd); run them as root" }
        for tool in ["/usr/sbin/sshd", "/usr/sbin/dockerd", "/usr/bin/rsync"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing: run scripts/testbed.sh install"
        }
        return nil
    }

    /// Starts worker `name` at 10.213.`index`.2; `homeSize` (e.g. "6m") gives it a small disk.
    public static func up(_ name: String, index: Int, homeSize: String? = nil) async throws -> TestbedWorker {
        _ = try? await testbed(["down", name])
        try await testbed(["up", name, String(index)], environment: homeSize.map { ["FDTB_HOME_SIZE=\($0)"] } ?? [])
        let facts = keyValues(try await testbed(["env", name]))
        return TestbedWorker(name: name, facts: facts)
    }

    init(name: String, facts: [String: String]) {
        self.name = name
        address = facts["FDTB_ADDRESS"] ?? ""
        sshConfig = facts["FDTB_SSH_CONFIG"] ?? ""
        knownHosts = facts["FDTB_KNOWN_HOSTS"] ?? ""
        homeOnHost = facts["FDTB_HOME"] ?? ""
        dockerHost = facts["FDTB_DOCKER_HOST"] ?? ""
        directory = facts["FDTB_DIR"] ?? ""
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) the worker's Docker engine: a hung dockerd, whose
    /// containers keep running while every docker call waits.
    public func pauseDocker(_ paused: Bool) throws {
        let text = try String(contentsOfFile: directory + "/run/dockerd.pid", encoding: .utf8)
        guard let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw FixtureError("no dockerd pid in \(directory)") }
        kill(pid, paused ? SIGSTOP : SIGCONT)
    }

    deinit { down() }

    /// Cuts (`false`) or restores the worker's network, on the worker's side of its link. A
    /// restored link is waited for until ssh answers again (the kernel's neighbour entry for the
    /// worker may stay failed for a moment after the cut).
    public func setLink(up: Bool) async throws {
        try await Self.testbed(["link", name, up ? "up" : "down"])
        guard up else { return }
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if (try? await ssh("true"))?.succeeded == true { return }
            try await Task.sleep(for: .milliseconds(300))
        }
        throw FixtureError("worker \(name) did not answer ssh within 15 s of its link coming back")
    }

    /// The same, from a synchronous context such as an output handler.
    public func cutLinkNow() {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [PackagePaths.testbedScript, "link", name, "down"]
        try? process.run()
        process.waitUntilExit()
    }

    /// Writes one ssh_config (and its known_hosts beside it) at `path` that reaches every worker of
    /// `workers`, each with its own client key and pinned host key: a fleet in one config.
    public static func sharedSSHConfig(_ workers: [TestbedWorker], at path: String) throws {
        let known = path + ".known_hosts"
        try workers.map { try String(contentsOfFile: $0.knownHosts, encoding: .utf8) }.joined()
            .write(toFile: known, atomically: true, encoding: .utf8)
        let hosts = workers.map { "Host \($0.address)\n    IdentityFile \($0.directory)/client_key\n" }.joined()
        try (hosts + """
            Host *
                IdentitiesOnly yes
                UserKnownHostsFile \(known)
                GlobalKnownHostsFile /dev/null
                ConnectTimeout 5

            """).write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Lets this host and `other` reach each other (routed through the machine's side of their links).
    public func route(to other: TestbedWorker) async throws {
        try await Self.testbed(["route", name, other.name])
    }

    /// Gives this host's Docker engine `fdtb/redis`, an image that runs a real redis-server.
    public func addRedisImage() async throws {
        try await Self.testbed(["redis-image", name])
    }

    /// The network namespace this host lives in (for `ip netns exec`).
    public var namespace: String { "fdtb-\(name)" }

    /// Runs a program inside this host's network namespace (with its Docker engine as DOCKER_HOST).
    public func inNamespace(_ executable: String, _ arguments: [String]) async throws -> CommandOutput {
        try await SubprocessRunner().run(DeployerKit.Command("/usr/bin/env", [
            "DOCKER_HOST=\(dockerHost)", "ip", "netns", "exec", namespace, executable] + arguments))
    }

    /// Gives the worker an FM bench dir for `site` with FM's compose files; with `jobs`, its worker
    /// services and schedule run the job world (`JobWorld`) from the synced release.
    public func addSite(_ site: String, jobs: Bool = false) async throws {
        try await Self.testbed(["site", name, site] + (jobs ? ["jobs"] : []))
    }

    /// Stops everything the worker runs and removes its files.
    public func down() {
        guard isUp else { return }
        isUp = false
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [PackagePaths.testbedScript, "down", name]
        process.standardOutput = FileHandle.nullDevice
        try? process.run()
        process.waitUntilExit()
    }

    /// Where a path of the worker's filesystem under /home is, seen from here.
    public func onHost(_ workerPath: String) -> String {
        precondition(workerPath.hasPrefix("/home/"), "testbed workers own only /home")
        return homeOnHost + workerPath.dropFirst("/home".count)
    }

    /// The worker's default workspace for `site`, as the worker sees it.
    public func workspace(_ site: String) -> String { "/home/frappe/frappe/sites/\(site)/workspace" }

    /// Compose services of `site` whose containers are running, sorted. Waits (up to 15 s) while
    /// a service runs twice: an old generation that is still draining after a handover.
    public func runningServices(site: String) async throws -> [String] {
        let deadline = ContinuousClock.now + .seconds(15)
        while true {
            let output = try await SubprocessRunner().run(DeployerKit.Command("docker", [
                "-H", dockerHost, "ps", "--format", "{{.Label \"com.docker.compose.service\"}}",
            ]))
            guard output.succeeded else { throw FixtureError("docker ps failed: \(output.standardErrorTail)") }
            let services = output.standardOutput.split(separator: "\n").map(String.init).sorted()
            if Set(services).count == services.count || ContinuousClock.now > deadline { return services }
            try await Task.sleep(for: .milliseconds(300))
        }
    }

    /// Runs a command on the worker as `frappe` over ssh.
    @discardableResult
    public func ssh(_ remoteCommand: String) async throws -> CommandOutput {
        try await SubprocessRunner().run(DeployerKit.Command("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", "frappe@\(address)", remoteCommand]))
    }

    /// Waits until `service`'s heartbeat satisfies `condition` (a fresh one is written every second).
    public func heartbeat(site: String, service: String, timeout: Duration = .seconds(20),
                          until condition: (Heartbeat) -> Bool = { _ in true }) async throws -> Heartbeat {
        let file = onHost(workspace(site)) + "/deployment-data/logs/heartbeat-\(service).log"
        let deadline = ContinuousClock.now + timeout
        var last: Heartbeat?
        while ContinuousClock.now < deadline {
            if let text = try? String(contentsOfFile: file, encoding: .utf8), let beat = Heartbeat(text) {
                last = beat
                if condition(beat) { return beat }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw FixtureError("no matching heartbeat from \(service) on \(name) within \(timeout); last: \(String(describing: last))")
    }

    @discardableResult
    static func testbed(_ arguments: [String], environment: [String] = []) async throws -> String {
        let output = try await SubprocessRunner().run(DeployerKit.Command("/usr/bin/env", environment + ["/bin/bash", PackagePaths.testbedScript] + arguments))
        guard output.succeeded else {
            throw FixtureError("testbed.sh \(arguments.joined(separator: " ")) failed: \(output.standardErrorTail.joined(separator: " / "))")
        }
        return output.standardOutput
    }
}

/// One line a fixture service writes: which release it runs and the config it reads.
public struct Heartbeat: Sendable, Equatable {
    public var release: String
    public var service: String
    public var redisQueue: String
    public var dbHost: String
    public var time: Int

    init?(_ line: String) {
        let fields = keyValues(line.replacingOccurrences(of: " ", with: "\n"))
        guard let release = fields["release"], let service = fields["service"], let time = fields["time"].flatMap(Int.init) else { return nil }
        self.release = release
        self.service = service
        redisQueue = fields["redis_queue"] ?? ""
        dbHost = fields["db_host"] ?? ""
        self.time = time
    }
}

/// The built `frappe-deployer` binary, run as a user runs it.
public enum DeployerTool {
    /// Beside the test bundle in the build folder, unless FDTB_TOOL names it.
    public static var path: String {
        if let path = ProcessInfo.processInfo.environment["FDTB_TOOL"] { return path }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var directory = bundle.deletingLastPathComponent()
        // On Linux the tests run from PACKAGE.xctest beside the products; on macOS from inside a bundle.
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("frappe-deployer").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return PackagePaths.root + "/.build/debug/frappe-deployer"
    }

    /// Runs the tool with `arguments`; the environment is the test's minus FRAPPE_DEPLOYER_* plus
    /// `environment`. Every line of standard error is kept and, as it arrives, passed to `onError`
    /// with the tool's pid, so a test can act (send a signal, cut the network) at a given step.
    /// `namespace` runs it inside that network namespace (a testbed host playing the main server);
    /// `wrapper` runs it under a command (e.g. `unshare --pid --fork --mount-proc`).
    public static func run(_ arguments: [String], environment: [String: String] = [:], namespace: String? = nil,
                           wrapper: [String] = [], onError: (@Sendable (String, pid_t) -> Void)? = nil) async throws -> ToolResult {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FRAPPE_DEPLOYER_") }
        env.merge(environment) { $1 }
        let assignments = env.map { "\($0.key)=\($0.value)" }
        // env(1) and ip-netns-exec exec the tool, so the pid is the tool's own.
        let invocation = (namespace.map { ["/usr/sbin/ip", "netns", "exec", $0] } ?? []) + wrapper + ["/usr/bin/env", "-i"] + assignments + [path] + arguments
        let result = try await Subprocess.run(
            .path(.init(invocation[0])), arguments: Arguments(Array(invocation.dropFirst())),
            input: .none, output: .sequence, error: .sequence
        ) { execution in
            let pid = execution.processIdentifier.value
            async let errors: [String] = {
                var lines: [String] = []
                try await SubprocessRunner.lines(of: execution.standardError) { line in
                    lines.append(line)
                    onError?(line, pid)
                }
                return lines
            }()
            var output = ""
            try await SubprocessRunner.lines(of: execution.standardOutput) { output += $0 + "\n" }
            return (output, try await errors)
        }
        return ToolResult(exitCode: result.terminationStatus.shellExitCode, standardOutput: result.closureResult.0, standardError: result.closureResult.1)
    }
}

extension DeployerTool {
    /// Starts the tool with `arguments` in the background and returns once a line of its standard
    /// error contains `marker` (e.g. "] stage..." when it holds the worker's lock and stages), or
    /// once it has ended; the task gives how it ended.
    public static func start(_ arguments: [String], until marker: String) async throws -> Task<ToolResult, any Error> {
        // Reached the marker, or ended without it (the caller reads why from the result).
        let done = Mutex(false)
        let running = Task {
            defer { done.withLock { $0 = true } }
            return try await DeployerTool.run(arguments, onError: { line, _ in if line.contains(marker) { done.withLock { $0 = true } } })
        }
        while !done.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(50)) }
        return running
    }
}

/// How one run of the tool ended and everything it printed.
public struct ToolResult: Sendable {
    public var exitCode: Int32
    public var standardOutput: String
    public var standardError: [String]
    /// The `error: ` lines the tool printed.
    public var errors: [String] { standardError.filter { $0.hasPrefix("error: ") } }
}

/// A listing of a directory tree (type, size, mtime, link target), to prove it did not change.
public struct TreeSnapshot: Equatable, CustomStringConvertible {
    public var entries: [String: String]

    /// Lists `root`, leaving out paths `ignoring` accepts (by default the fixture services'
    /// heartbeat files, which running services rewrite every second, and so the time of the logs
    /// directory that holds them).
    /// With `contents`, every regular file's bytes are part of its entry too (an FNV-1a hash).
    public init(_ root: String, contents: Bool = false,
                ignoring: (String) -> Bool = { $0.contains("heartbeat-") || $0.contains(".hb-") || $0.hasSuffix("deployment-data/logs") }) {
        entries = [:]
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: root) else { return }
        for case let path as String in walker where !ignoring(path) {
            let full = root + "/" + path
            guard let attributes = try? fm.attributesOfItem(atPath: full) else { continue }
            let type = (attributes[.type] as? FileAttributeType)?.rawValue ?? "?"
            let size = (attributes[.size] as? Int) ?? 0
            let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let target = (try? fm.destinationOfSymbolicLink(atPath: full)) ?? ""
            var digest = ""
            if contents, attributes[.type] as? FileAttributeType == .typeRegular, let data = fm.contents(atPath: full) {
                var hash: UInt64 = 0xcbf29ce484222325
                for byte in data { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
                digest = String(hash, radix: 16)
            }
            entries[path] = "\(type) \(size) \(mtime) \(target) \(digest)"
        }
    }

    public var description: String { entries.keys.sorted().joined(separator: "\n") }
}

/// Compares a release on the main server with the worker's copy, as the sync's excludes shape it.
public enum ReleaseComparison {
    /// Paths that differ, are missing or are extra on the worker (empty when the copy is exact).
    /// Excluded paths and the two config links the worker points at its own configs are left out.
    public static func differences(main: String, worker: String, site: String) -> [String] {
        let skip: (String) -> Bool = { path in
            let parts = path.split(separator: "/")
            return parts.contains { [".git", "node_modules", "__pycache__", ".cache"].contains($0) }
                || path.hasSuffix(".pyc") || path.hasSuffix(".log")
                || path == "sites/common_site_config.json" || path == "sites/\(site)/site_config.json"
                || path == "sites/common_site_config.workers.json" || path == "sites/\(site)/site_config.workers.json"
        }
        let local = TreeSnapshot(main, ignoring: skip)
        let remote = TreeSnapshot(worker, ignoring: skip)
        var differences = Set(local.entries.keys).symmetricDifference(remote.entries.keys).map { "only on one side: \($0)" }
        let fm = FileManager.default
        for path in local.entries.keys where remote.entries[path] != nil {
            let a = main + "/" + path
            let b = worker + "/" + path
            if let target = try? fm.destinationOfSymbolicLink(atPath: a) {
                if (try? fm.destinationOfSymbolicLink(atPath: b)) != target { differences.append("link differs: \(path)") }
            } else if local.entries[path]?.hasPrefix("NSFileTypeRegular") == true, !fm.contentsEqual(atPath: a, andPath: b) {
                differences.append("content differs: \(path)")
            }
        }
        return differences.sorted()
    }
}

/// `KEY=VALUE` lines (the testbed's env output, a heartbeat's fields) as a dictionary.
func keyValues(_ text: String) -> [String: String] {
    var values: [String: String] = [:]
    for line in text.split(separator: "\n") {
        guard let equals = line.firstIndex(of: "=") else { continue }
        values[String(line[..<equals])] = String(line[line.index(after: equals)...])
    }
    return values
}
