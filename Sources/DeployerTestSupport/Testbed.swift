import DeployerKit
import Foundation
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
    private var isUp = true

    /// Why integration tests cannot run here, or nil when they can.
    public static var unavailableReason: String? {
        if getuid() != 0 { return "integration tests need root (network namespaces, sshd, dockerd); run them as root" }
        for tool in ["/usr/sbin/sshd", "/usr/sbin/dockerd", "/usr/bin/rsync"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing: run scripts/testbed.sh install"
        }
        return nil
    }

    /// Starts worker `name` at 10.213.`index`.2.
    public static func up(_ name: String, index: Int) async throws -> TestbedWorker {
        _ = try? await testbed(["down", name])
        try await testbed(["up", name, String(index)])
        let facts = WorkerConnectionFacts.parse(try await testbed(["env", name]))
        return TestbedWorker(name: name, facts: facts)
    }

    init(name: String, facts: [String: String]) {
        self.name = name
        address = facts["FDTB_ADDRESS"] ?? ""
        sshConfig = facts["FDTB_SSH_CONFIG"] ?? ""
        knownHosts = facts["FDTB_KNOWN_HOSTS"] ?? ""
        homeOnHost = facts["FDTB_HOME"] ?? ""
        dockerHost = facts["FDTB_DOCKER_HOST"] ?? ""
    }

    deinit { down() }

    /// Gives the worker an FM bench dir for `site` with FM's compose files.
    public func addSite(_ site: String) async throws {
        try await Self.testbed(["site", name, site])
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

    /// Compose services of `site` whose containers are running, sorted.
    public func runningServices(site: String) async throws -> [String] {
        let output = try await SubprocessRunner().run(Command("docker", [
            "-H", dockerHost, "ps", "--format", "{{.Label \"com.docker.compose.service\"}}",
        ]))
        guard output.succeeded else { throw FixtureError("docker ps failed: \(output.standardErrorTail)") }
        return output.standardOutput.split(separator: "\n").map(String.init).sorted()
    }

    /// Runs a command on the worker as `frappe` over ssh.
    @discardableResult
    public func ssh(_ remoteCommand: String) async throws -> CommandOutput {
        try await SubprocessRunner().run(Command("ssh", ["-F", sshConfig, "-o", "BatchMode=yes", "frappe@\(address)", remoteCommand]))
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
    static func testbed(_ arguments: [String]) async throws -> String {
        let output = try await SubprocessRunner().run(Command("/bin/bash", [PackagePaths.testbedScript] + arguments))
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
        let fields = WorkerConnectionFacts.parse(line.replacingOccurrences(of: " ", with: "\n"))
        guard let release = fields["release"], let service = fields["service"], let time = fields["time"].flatMap(Int.init) else { return nil }
        self.release = release
        self.service = service
        redisQueue = fields["redis_queue"] ?? ""
        dbHost = fields["db_host"] ?? ""
        self.time = time
    }
}

enum WorkerConnectionFacts {
    static func parse(_ text: String) -> [String: String] {
        var facts: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            facts[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return facts
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
    /// `environment`. Every line of standard error is kept.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> ToolResult {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("FRAPPE_DEPLOYER_") }
        env.merge(environment) { $1 }
        let assignments = env.map { "\($0.key)=\($0.value)" }
        let errorLines = Mutex<[String]>([])
        let output = try await SubprocessRunner().run(Command("/usr/bin/env", ["-i"] + assignments + [path] + arguments)) { stream, line in
            if stream == .standardError { errorLines.withLock { $0.append(line) } }
        }
        return ToolResult(exitCode: output.exitCode, standardOutput: output.standardOutput, standardError: errorLines.withLock { $0 })
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
    /// heartbeat files, which running services rewrite every second).
    public init(_ root: String, ignoring: (String) -> Bool = { $0.contains("heartbeat-") || $0.contains(".hb-") }) {
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
            entries[path] = "\(type) \(size) \(mtime) \(target)"
        }
    }

    public var description: String { entries.keys.sorted().joined(separator: "\n") }
}
