import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// The least-privilege key (`remote-worker authorize`) against a real testbed worker: its sshd,
/// its rrsync and Docker. Everything the tool does works through it; nothing else does.
@Suite("a least-privilege key against a testbed worker", .serialized, .enabled(if: TestbedWorker.unavailableReason == nil,
       Comment(rawValue: TestbedWorker.unavailableReason ?? "")))
final class AuthorizeIntegrationTests {
    static let site = "auth.example.test"
    static let r1 = "release_20261201_090000"
    static let r2 = "release_20261202_090000"
    static let index = 175

    let directory: TemporaryDirectory
    let fixture: WorkspaceFixture
    let worker: TestbedWorker
    /// The worker's ssh_config without the testbed's full-access key: only the restricted key is offered.
    let restrictedConfig: String
    var key: String { directory.path + "/fd-key" }

    init() async throws {
        directory = try TemporaryDirectory(prefix: "fd-auth")
        fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site, release: Self.r1,
                                              mainAddress: "10.213.\(Self.index).1")
        worker = try await TestbedWorker.up("au\(Self.index)", index: Self.index)
        try await worker.addSite(Self.site)
        restrictedConfig = directory.path + "/restricted_ssh_config"
        let full = try String(contentsOfFile: worker.sshConfig, encoding: .utf8)
        try full.split(separator: "\n").filter { !$0.contains("IdentityFile") }.joined(separator: "\n")
            .write(toFile: restrictedConfig, atomically: true, encoding: .utf8)
    }

    deinit { worker.down() }

    func tool(_ command: String, restricted: Bool, _ extra: [String] = []) async throws -> ToolResult {
        let access = restricted ? ["--ssh-config", restrictedConfig, "--restricted-key", key] : ["--ssh-config", worker.sshConfig]
        return try await DeployerTool.run(["remote-worker", command, Self.site, "--server", worker.address, "--benches-path", fixture.benchesPath]
            + access + extra)
    }

    /// Runs a program on this host (ssh, rsync) as an operator with the restricted key would.
    func attempt(_ executable: String, _ arguments: [String], input: String? = nil) async throws -> CommandOutput {
        try await TimeLimit.run(.seconds(60)) {
            try await SubprocessRunner().run(Command(executable, arguments, standardInput: input))
        }
    }

    var sshWithKey: [String] { ["-F", restrictedConfig, "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"] }

    @Test("authorize --install, then sync, a handover, status, history and rollback through the key; a shell, other commands, other directories and forwarding are refused", .timeLimit(.minutes(6)))
    func leastPrivilege() async throws {
        let keys = worker.onHost("/home/frappe/.ssh/authorized_keys")
        let before = try String(contentsOfFile: keys, encoding: .utf8)
        // Without --install: the entry is printed (the key made), nothing on the worker changes.
        let printed = try await tool("authorize", restricted: false, ["--key", key])
        #expect(printed.exitCode == 0, "\(printed.standardError)")
        #expect(printed.standardOutput.contains("restrict,command=\"/bin/sh /home/frappe/frappe/sites/\(Self.site)/.frappe-deployer/authorized/dispatch\" ssh-ed25519 "))
        #expect(FileManager.default.fileExists(atPath: key) && FileManager.default.fileExists(atPath: key + ".pub"))
        #expect(try String(contentsOfFile: keys, encoding: .utf8) == before)
        // Not authorized yet: the key cannot log in.
        #expect(try await tool("sync", restricted: true).exitCode == 1)

        let installed = try await tool("authorize", restricted: false, ["--key", key, "--install"])
        #expect(installed.exitCode == 0, "\(installed.standardError)")
        let entries = try String(contentsOfFile: keys, encoding: .utf8)
        #expect(entries.hasPrefix(before), "the full-access key's entry is kept")
        let entry = try #require(entries.split(separator: "\n").last.map(String.init))
        #expect(printed.standardOutput.contains(entry), "the printed entry is the installed one")
        #expect(try await tool("authorize", restricted: false, ["--key", key, "--install"]).exitCode == 0)
        #expect(try String(contentsOfFile: keys, encoding: .utf8) == entries, "installed again: still one entry for the site")

        // Everything the tool does, through the key.
        let first = try await tool("sync", restricted: true)
        #expect(first.exitCode == 0, "\(first.standardError)")
        try fixture.addRelease(Self.r2, seed: 2)
        try fixture.activate(Self.r2)
        let second = try await tool("sync", restricted: true)
        #expect(second.exitCode == 0, "\(second.standardError)")
        #expect(second.standardOutput.contains("handover"), "\(second.standardOutput)")
        #expect(second.standardError.contains { $0.contains("reusing \(Self.r1)") }, "the new release was staged on the old one (--link-dest through rrsync)")
        let after = Int(Date().timeIntervalSince1970)
        #expect(try await worker.heartbeat(site: Self.site, service: "short-worker") { $0.time > after }.release == Self.r2)
        let status = try await tool("status", restricted: true, ["--json"])
        #expect(status.exitCode == 0 && status.standardOutput.contains("\"live_release\" : \"\(Self.r2)\""), "\(status.standardOutput)")
        let history = try await tool("history", restricted: true)
        #expect(history.exitCode == 0 && history.standardOutput.contains(Self.r2), "\(history.standardOutput)")
        let rollback = try await tool("rollback", restricted: true)
        #expect(rollback.exitCode == 0, "\(rollback.standardError)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: worker.onHost(worker.workspace(Self.site)) + "/frappe-bench") == Self.r1)

        // Nothing else through the key.
        let destination = "frappe@\(worker.address)"
        let shell = try await attempt("ssh", sshWithKey + [destination, "id"])
        #expect(shell.exitCode != 0 && shell.standardErrorTail.joined().contains("is refused"), "\(shell)")
        let script = try RemoteScript.worker()
        let own = try await attempt("ssh", sshWithKey + [destination, "sh -s -- status \(worker.workspace(Self.site)) --site=\(Self.site)"], input: script.text)
        #expect(own.exitCode != 0 && !own.standardOutput.contains("current_release"), "a script sent by the client never runs")
        let name = "fd-probe-\(UUID().uuidString).txt"
        let probe = directory.path + "/" + name
        try "probe\n".write(toFile: probe, atomically: true, encoding: .utf8)
        let rsyncShell = (["ssh"] + sshWithKey).joined(separator: " ")
        for target in ["/home/frappe/outside", worker.workspace(Self.site) + "/../escape"] {
            let copy = try await attempt("rsync", ["-e", rsyncShell, probe, "\(destination):\(target)/"])
            #expect(copy.exitCode != 0, "rsync to \(target) was allowed")
        }
        #expect(!FileManager.default.fileExists(atPath: worker.onHost("/home/frappe/outside")))
        #expect(!FileManager.default.fileExists(atPath: worker.onHost("/home/frappe/frappe/sites/\(Self.site)/escape")))
        // Any other absolute path names a place inside the workspace (rrsync's root), never the worker's own.
        _ = try await attempt("rsync", ["-e", rsyncShell, probe, "\(destination):/tmp/"])
        #expect(!FileManager.default.fileExists(atPath: "/tmp/" + name), "rsync wrote the worker's /tmp")
        let inside = try await attempt("rsync", ["-e", rsyncShell, probe, "\(destination):\(worker.workspace(Self.site))/"])
        #expect(inside.exitCode == 0, "rsync into the workspace is what the key is for: \(inside.standardErrorTail)")
        let forward = try await attempt("ssh", sshWithKey + ["-W", "127.0.0.1:22", destination], input: "")
        #expect(forward.exitCode != 0 && forward.standardErrorTail.joined().contains("prohibited"), "\(forward.standardErrorTail)")

        // Another build's worker script is refused until authorize --install runs again.
        let authorized = worker.onHost("/home/frappe/frappe/sites/\(Self.site)/.frappe-deployer/authorized/worker.sh")
        try (try String(contentsOfFile: authorized, encoding: .utf8) + "# another build\n").write(toFile: authorized, atomically: true, encoding: .utf8)
        let stale = try await tool("sync", restricted: true)
        #expect(stale.exitCode == 1)
        #expect(stale.errors.first?.contains("run remote-worker authorize --install again") == true, "\(stale.standardError)")
    }
}
