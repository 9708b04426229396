import DeployerKit
import DeployerTestSupport
import Foundation
import Testing

/// The package installed as an operator installs it (issue 13): `apt-get install` of the .deb
/// that scripts/package.sh built, the installed binary run with the Swift toolchain's directory
/// hidden (a mount namespace with an empty tmpfs over it) for a real sync, status and rollback
/// against a testbed worker; the man page and the bash completion; then a clean removal.
@Suite("the package, installed", .serialized, .enabled(if: BuiltPackage.unavailableReason == nil,
       Comment(rawValue: BuiltPackage.unavailableReason ?? "")))
final class InstallTests {
    static let site = "install.example.test"
    static let r1 = "release_20261201_110000"
    static let r2 = "release_20261202_110000"

    /// The Swift toolchain's root (where the debug build's libswiftCore.so lives, up to /usr/lib/swift).
    static func toolchainRoot() async throws -> String {
        let ldd = try await SubprocessRunner().run(Command("ldd", [PackagePaths.root + "/.build/debug/frappe-deployer"]))
        let line = try #require(ldd.standardOutput.split(separator: "\n").first { $0.contains("libswiftCore.so") })
        let path = try #require(line.split(separator: " ").first { $0.hasPrefix("/") && $0.contains("libswiftCore.so") })
        return String(try #require(path.components(separatedBy: "/usr/lib/swift").first))
    }

    /// Runs `command` in a mount namespace where `hidden` is an empty directory.
    static func withoutToolchain(_ hidden: String, _ command: [String]) async throws -> CommandOutput {
        try await SubprocessRunner().run(Command("/usr/bin/unshare", ["-m", "/bin/sh", "-c",
                                                                     "mount -t tmpfs -o size=1m tmpfs \"$0\" && exec /usr/bin/env -u FDTB_PACKAGE \"$@\"",
                                                                     hidden] + command))
    }

    static func shell(_ script: String) async throws -> CommandOutput {
        try await SubprocessRunner().run(Command("/bin/bash", ["-c", script]))
    }

    @Test("apt-get install, then sync, status and rollback with the toolchain hidden; man page, completion; apt-get remove",
          .timeLimit(.minutes(10)))
    func installed() async throws {
        let package = try #require(BuiltPackage.path)
        let install = try await Self.shell("DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \(ShellQuote.quote(package)) 2>&1")
        try #require(install.succeeded, "\(install.standardOutput)")
        defer { _ = try? Process.run(URL(fileURLWithPath: "/usr/bin/dpkg"), arguments: ["--purge", "frappe-deployer"]).waitUntilExit() }
        let binary = "/usr/bin/frappe-deployer"
        #expect(FileManager.default.isExecutableFile(atPath: binary))

        let toolchain = try await Self.toolchainRoot()
        let hidden = try await Self.withoutToolchain(toolchain, ["/bin/sh", "-c", "ls -A \"$1\" | wc -l; ldd \"$2\"", "sh", toolchain, binary])
        #expect(hidden.standardOutput.hasPrefix("0\n"), "the toolchain is hidden: \(hidden.standardOutput)")
        #expect(!hidden.standardOutput.contains("not found") && !hidden.standardOutput.contains("libswift"), "\(hidden.standardOutput)")

        let version = try await Self.withoutToolchain(toolchain, [binary, "--version"])
        #expect(version.succeeded)
        #expect(version.standardOutput.contains("0.") && version.standardOutput.contains("commit"), "\(version.standardOutput)")

        // A real worker and a main server's workspace.
        let directory = try TemporaryDirectory(prefix: "fd-install")
        let fixture = try WorkspaceFixture.create(benchesPath: directory.path + "/benches", site: Self.site, release: Self.r1,
                                                  mainAddress: "10.213.245.1")
        let worker = try await TestbedWorker.up("inst245", index: 245)
        defer { worker.down() }
        try await worker.addSite(Self.site)
        let target = ["--server", worker.address, "--ssh-config", worker.sshConfig]
        func run(_ arguments: [String]) async throws -> CommandOutput {
            try await Self.withoutToolchain(toolchain, [binary, "remote-worker"] + arguments)
        }
        let first = try await run(["sync", Self.site] + target + ["--benches-path", fixture.benchesPath])
        #expect(first.succeeded, "\(first.standardErrorTail)")
        try fixture.addRelease(Self.r2, seed: 2)
        try fixture.activate(Self.r2)
        let second = try await run(["sync", Self.site] + target + ["--benches-path", fixture.benchesPath])
        #expect(second.succeeded, "\(second.standardErrorTail)")
        let status = try await run(["status", Self.site] + target + ["--benches-path", fixture.benchesPath, "--json"])
        #expect(status.succeeded, "\(status.standardErrorTail)")
        #expect(status.standardOutput.contains("\"live_release\" : \"\(Self.r2)\""), "\(status.standardOutput)")
        let rollback = try await run(["rollback", Self.site] + target)
        #expect(rollback.succeeded, "\(rollback.standardErrorTail)")
        let after = Int(Date().timeIntervalSince1970)
        for service in ["schedule", "short-worker", "long-worker"] {
            #expect(try await worker.heartbeat(site: Self.site, service: service) { $0.time > after }.release == Self.r1)
        }

        // The man page and the bash completion the package installed.
        let manual = try await Self.shell("MANWIDTH=100 man -P cat frappe-deployer 2>&1")
        #expect(manual.succeeded && manual.standardOutput.contains("remote-worker"), "\(manual.standardOutput.prefix(400))")
        let completion = try await Self.shell("""
            source /usr/share/bash-completion/completions/frappe-deployer
            COMP_WORDS=(frappe-deployer remote-worker sy); COMP_CWORD=2
            COMP_LINE='frappe-deployer remote-worker sy'; COMP_POINT=${#COMP_LINE}
            function=$(complete -p frappe-deployer | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')
            "$function" frappe-deployer sy remote-worker
            printf '%s\\n' "${COMPREPLY[@]}"
            """)
        #expect(completion.standardOutput.split(separator: "\n").contains("sync"), "\(completion.standardOutput) \(completion.standardErrorTail)")

        // The watch's systemd unit: installed, and its ExecStart a command line the binary takes
        // (with the site's config missing it stops at that, exit 2, naming the file).
        let unit = "/lib/systemd/system/frappe-deployer-watch@.service"
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        let execStart = try #require(text.split(separator: "\n").first { $0.hasPrefix("ExecStart=") }.map { String($0.dropFirst("ExecStart=".count)) })
        #expect(execStart.hasPrefix("\(binary) remote-worker watch %i "), "\(execStart)")
        let started = try await Self.withoutToolchain(toolchain, execStart.replacingOccurrences(of: "%i", with: Self.site).split(separator: " ").map(String.init))
        #expect(started.exitCode == 2, "\(started.standardErrorTail)")
        #expect(started.standardErrorTail.joined().contains("/etc/frappe-deployer/\(Self.site).toml"), "\(started.standardErrorTail)")

        // Removed cleanly: the binary, the man page, the completions and the unit go.
        let remove = try await Self.shell("DEBIAN_FRONTEND=noninteractive apt-get remove -y frappe-deployer 2>&1")
        #expect(remove.succeeded, "\(remove.standardOutput)")
        for path in [binary, "/usr/share/man/man1/frappe-deployer.1.gz", "/usr/share/bash-completion/completions/frappe-deployer",
                     "/usr/share/zsh/vendor-completions/_frappe-deployer", "/usr/share/fish/vendor_completions.d/frappe-deployer.fish", unit] {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path) is left after removal")
        }
    }
}

/// The .deb to install: scripts/test.sh builds it with scripts/package.sh and names it in FDTB_PACKAGE.
enum BuiltPackage {
    static var path: String? { ProcessInfo.processInfo.environment["FDTB_PACKAGE"] }

    static var unavailableReason: String? {
        if let reason = TestbedWorker.unavailableReason { return reason }
        guard let path else { return "FDTB_PACKAGE is not set: build the package with scripts/package.sh and set it (scripts/test.sh does both)" }
        return FileManager.default.fileExists(atPath: path) ? nil : "FDTB_PACKAGE names \(path), which does not exist"
    }
}
