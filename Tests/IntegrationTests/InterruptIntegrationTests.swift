import DeployerKit
import DeployerTestSupport
import Foundation
import Synchronization
import Testing

/// Every wait has a limit and listens (issue 11.7, 11.8): a worker that hangs is given up on with
/// a message, and SIGINT/SIGTERM end any wait within seconds, releasing what the sync took.
@Suite("waits that end: time limits and signals, against testbed workers", .serialized,
       .enabled(if: TestbedWorker.unavailableReason == nil, Comment(rawValue: TestbedWorker.unavailableReason ?? "")))
final class InterruptIntegrationTests {
    static let site = "wait.example.test"
    static let r1 = "release_20261201_100000"
    static let r2 = "release_20261202_100000"
    nonisolated(unsafe) static var nextIndex = 140

    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    let worker: TestbedWorker

    init() async throws {
        Self.nextIndex += 1
        let index = Self.nextIndex
        directory = try TemporaryDirectory(prefix: "fd-wait")
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site, release: Self.r1,
                                              mainAddress: "10.213.\(index).1")
        worker = try await TestbedWorker.up("wt\(index)", index: index)
        try await worker.addSite(Self.site)
    }

    deinit {
        try? worker.pauseDocker(false)
        worker.down()
    }

    var connection: [String] { ["--server", worker.address, "--ssh-config", worker.sshConfig] }

    func sync(_ extra: [String] = [], onError: (@Sendable (String, pid_t) -> Void)? = nil) async throws -> ToolResult {
        try await DeployerTool.run(["remote-worker", "sync", Self.site] + connection + ["--benches-path", fixture.benchesPath] + extra,
                                   onError: onError)
    }

    /// Sends `signal` to the tool `delay` after the first stderr line containing `marker`, and
    /// records when it was sent.
    final class SignalAt: Sendable {
        let sentAt = Mutex<ContinuousClock.Instant?>(nil)
        let marker: String
        let signal: Int32
        let delay: Duration
        init(_ signal: Int32, on marker: String, after delay: Duration = .seconds(1)) {
            self.signal = signal
            self.marker = marker
            self.delay = delay
        }
        var handler: @Sendable (String, pid_t) -> Void {
            { [self] line, pid in
                guard line.contains(marker), sentAt.withLock({ $0 == nil }) else { return }
                sentAt.withLock { $0 = .now }
                Task {
                    try await Task.sleep(for: delay)
                    sentAt.withLock { $0 = .now }
                    kill(pid, signal)
                }
            }
        }
        /// Seconds from the signal to now.
        var secondsSince: Double { sentAt.withLock { $0.map { (ContinuousClock.now - $0).inSeconds } } ?? .infinity }
    }

    @Test("RequestTTY force in the operator's ssh config: no terminal is requested and the sync runs", .timeLimit(.minutes(3)))
    func forcedTTY() async throws {
        let config = directory.path + "/ssh_config"
        try ("RequestTTY force\n" + String(contentsOfFile: worker.sshConfig, encoding: .utf8)).write(toFile: config, atomically: true, encoding: .utf8)
        let result = try await DeployerTool.run(["remote-worker", "sync", Self.site, "--server", worker.address, "--ssh-config", config,
                                                 "--benches-path", fixture.benchesPath])
        #expect(result.exitCode == 0, "\(result.standardError.joined(separator: "\n"))")
    }

    @Test("a hung Docker engine: the check gives up within its limit and says so; SIGTERM ends it at once; no lock is left", .timeLimit(.minutes(4)))
    func hungDocker() async throws {
        #expect(try await sync().exitCode == 0)
        try worker.pauseDocker(true)
        let started = ContinuousClock.now
        let hung = try await sync()
        let seconds = (ContinuousClock.now - started).inSeconds
        #expect(hung.exitCode == 1, "\(hung.standardError)")
        #expect(hung.errors.first?.contains("the Docker engine on the worker does not answer") == true, "\(hung.standardError)")
        #expect(seconds < 60, "gave up after \(seconds) s")

        let term = SignalAt(SIGTERM, on: "] check worker...")
        let interrupted = try await sync(onError: term.handler)
        #expect(interrupted.exitCode == 130, "\(interrupted.standardError)")
        #expect(term.secondsSince < 15, "took \(term.secondsSince) s after SIGTERM")
        try worker.pauseDocker(false)
        // Nothing was left taken: the next sync needs no --lock-wait.
        let next = try await sync()
        #expect(next.exitCode == 0, "\(next.standardError.joined(separator: "\n"))")
    }

    @Test("SIGTERM while waiting for another sync's lock: exit 130 within seconds, nothing done (sync and rollback)", .timeLimit(.minutes(4)))
    func lockWait() async throws {
        #expect(try await sync().exitCode == 0)
        try fixture.addRelease(Self.r2, seed: 2, incompressibleMiB: 6)
        try fixture.activate(Self.r2)
        let holder = try await DeployerTool.start(["remote-worker", "sync", Self.site] + connection + ["--benches-path", fixture.benchesPath, "--bwlimit", "1024"],
                                                  until: "] stage...")

        let waitingSync = SignalAt(SIGTERM, on: "] check worker...", after: .seconds(2))
        let refused = try await sync(["--lock-wait", "120"], onError: waitingSync.handler)
        #expect(refused.exitCode == 130, "\(refused.standardError)")
        #expect(waitingSync.secondsSince < 5, "took \(waitingSync.secondsSince) s after SIGTERM")
        #expect(refused.errors.first?.contains("interrupted by SIGTERM") == true, "\(refused.standardError)")

        let waitingRollback = SignalAt(SIGTERM, on: "] check worker...", after: .seconds(2))
        let rollback = try await DeployerTool.run(["remote-worker", "rollback", Self.site] + connection + ["--lock-wait", "120"],
                                                  onError: waitingRollback.handler)
        #expect(rollback.exitCode == 130, "\(rollback.standardError)")
        #expect(waitingRollback.secondsSince < 5, "took \(waitingRollback.secondsSince) s after SIGTERM")

        let first = try await holder.value
        #expect(first.exitCode == 0, "\(first.standardError.joined(separator: "\n"))")
        // Neither the interrupted sync nor the interrupted rollback did anything: r2 runs.
        let workspace = worker.onHost(worker.workspace(Self.site))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: workspace + "/frappe-bench") == Self.r2)
        let after = Int(Date().timeIntervalSince1970)
        for service in ["schedule", "short-worker", "long-worker"] {
            #expect(try await worker.heartbeat(site: Self.site, service: service) { $0.time > after }.release == Self.r2)
        }
    }
}

/// A connection that never completes (a port that accepts and never speaks SSH).
@Suite("waits that end: a hanging connect")
struct HangingConnectTests {
    @Test("SIGTERM during a hanging connect ends the tool within seconds with 130", .timeLimit(.minutes(2)))
    func hangingConnect() async throws {
        let directory = try TemporaryDirectory(prefix: "fd-hang")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: "hang.example.test", release: "release_20261201_000000")
        // Accepts TCP connections (the kernel's backlog does) and never sends an SSH banner.
        let listener = Process()
        listener.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        listener.arguments = ["-c", "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(8); print(s.getsockname()[1], flush=True); time.sleep(300)"]
        let pipe = Pipe()
        listener.standardOutput = pipe
        try listener.run()
        defer { listener.terminate() }
        let port = String(decoding: pipe.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(Int(port) != nil, "the listener printed no port: \(port)")
        let term = InterruptIntegrationTests.SignalAt(SIGTERM, on: "] connect...")
        let result = try await DeployerTool.run(["remote-worker", "sync", "hang.example.test", "--server", "127.0.0.1", "--ssh-port", port,
                                                 "--benches-path", fixture.benchesPath, "--accept-new-host-key"], onError: term.handler)
        #expect(result.exitCode == 130, "\(result.standardError)")
        #expect(term.secondsSince < 8, "took \(term.secondsSince) s after SIGTERM")
    }
}

extension Duration {
    var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
