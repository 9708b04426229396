import DeployerKit
import DeployerTestSupport
import Testing

@Suite("ssh and rsync argument arrays")
struct RemoteCommandTests {
    let worker = WorkerSettings(server: "10.0.0.5", sshUser: "frappe", sshPort: 2222, workspacePath: "/home/frappe/frappe/sites/a.test/workspace")
    var endpoint: SSHEndpoint { SSHEndpoint(worker: worker, controlPath: "/tmp/fd-abc/m") }

    func value(of option: String, in arguments: [String]) -> [String] {
        zip(arguments, arguments.dropFirst()).filter { $0.0 == "-o" && $0.1.hasPrefix(option + "=") }.map { String($0.1.dropFirst(option.count + 1)) }
    }

    @Test("every ssh call is batch mode, checks host keys strictly, and uses the port")
    func commonOptions() {
        let arguments = SSHCommand.commonOptions(endpoint)
        #expect(value(of: "BatchMode", in: arguments) == ["yes"])
        #expect(value(of: "StrictHostKeyChecking", in: arguments) == ["yes"])
        #expect(value(of: "ControlPath", in: arguments) == ["/tmp/fd-abc/m"])
        #expect(arguments.contains("-p") && arguments[arguments.firstIndex(of: "-p")! + 1] == "2222")
        #expect(!arguments.contains("-F"))
    }

    @Test("--accept-new-host-key maps to accept-new, never to no")
    func acceptNew() {
        var trusting = worker
        trusting.acceptNewHostKey = true
        let arguments = SSHCommand.commonOptions(SSHEndpoint(worker: trusting, controlPath: "/tmp/x/m"))
        #expect(value(of: "StrictHostKeyChecking", in: arguments) == ["accept-new"])
    }

    @Test("an ssh config file is passed with -F")
    func configFile() {
        var configured = worker
        configured.sshConfig = "/etc/fd/ssh config"
        let arguments = SSHCommand.commonOptions(SSHEndpoint(worker: configured, controlPath: "/tmp/x/m"))
        #expect(Array(arguments.prefix(2)) == ["-F", "/etc/fd/ssh config"])
    }

    @Test("the master connection backgrounds after auth and expires when idle")
    func master() {
        let command = SSHCommand.openMaster(endpoint)
        #expect(command.executable == "ssh")
        #expect(value(of: "ControlMaster", in: command.arguments) == ["yes"])
        #expect(value(of: "ControlPersist", in: command.arguments) == [String(SSHCommand.controlPersistSeconds)])
        #expect(Array(command.arguments.suffix(6)) == ["-f", "-N", "-l", "frappe", "--", "10.0.0.5"])
    }

    @Test("a script runs as sh -s with every argument quoted once, after --")
    func script() {
        let script = RemoteScript(name: "t", text: "echo hi\n")
        let command = SSHCommand.script(endpoint, script, ["activate", "/srv/my ws", "a.test", "release_1"])
        #expect(command.standardInput == "echo hi\n")
        #expect(Array(command.arguments.suffix(4)) == ["frappe", "--", "10.0.0.5", "sh -s -- activate '/srv/my ws' a.test release_1"])
        #expect(value(of: "ControlMaster", in: command.arguments) == ["no"])
        #expect(command.scriptPhase == "activate")
    }

    @Test("rsync -e carries the same ssh options; single quotes in them are refused")
    func rsyncShell() throws {
        var configured = worker
        configured.sshConfig = "/etc/my ssh/config"
        let shell = try SSHCommand.rsyncShell(SSHEndpoint(worker: configured, controlPath: "/tmp/x/m"))
        #expect(shell.hasPrefix("ssh -F '/etc/my ssh/config' -p 2222 -o BatchMode=yes -o StrictHostKeyChecking=yes"))
        #expect(shell.hasSuffix("-o ControlPath=/tmp/x/m -o RequestTTY=no -o RemoteCommand=none -o ControlMaster=no"))
        configured.sshConfig = "/etc/it's/config"
        #expect(throws: RsyncShellError.self) { try SSHCommand.rsyncShell(SSHEndpoint(worker: configured, controlPath: "/tmp/x/m")) }
    }

    @Test("compression: auto takes zstd, else lz4, else none (never zlib); an explicit choice the worker lacks is an error")
    func compressChoices() throws {
        let modern = ["zstd", "lz4", "zlibx", "zlib", "none"]
        func choose(_ setting: CompressChoice, worker: [String]) throws -> String? {
            try RsyncChoices.resolve(setting, local: modern, worker: worker, workerHost: "w", localChecksums: ["xxh128", "md5"], workerChecksums: ["md5"]).compression
        }
        #expect(try choose(.auto, worker: modern) == "zstd")
        #expect(try choose(.auto, worker: ["lz4", "zlib", "none"]) == "lz4")
        #expect(try choose(.auto, worker: ["zlib", "none"]) == nil)
        #expect(try choose(.off, worker: modern) == nil)
        #expect(try choose(.lz4, worker: modern) == "lz4")
        #expect(throws: RsyncChoices.Unavailable(choice: "zstd", host: "w")) { try choose(.zstd, worker: ["zlib"]) }
        let both = try RsyncChoices.resolve(.auto, local: modern, worker: modern, workerHost: "w", localChecksums: ["xxh128"], workerChecksums: ["xxh3", "xxh128"])
        #expect(both.checksum == "xxh128")
        let version = "Checksum list:\n    xxh128 xxh3 xxh64 (xxhash) md5 md4 sha1 none\nCompress list:\n    zstd lz4 zlibx zlib none\n"
        #expect(RsyncChoices.list("Compress list:", in: version) == modern)
        #expect(RsyncChoices.list("Checksum list:", in: version) == ["xxh128", "xxh3", "xxh64", "md5", "md4", "sha1", "none"])
    }

    @Test("rsync: archive, compress, checksum, delete, protected args; never --delete-excluded")
    func rsyncArguments() {
        var transfer = RsyncTransfer(name: "release", sources: ["/w/release_1/"], destination: "/r/release_1/", excludes: [".git/", "*.pyc"])
        #expect(!RsyncCommand.arguments(transfer, endpoint: endpoint, shell: "ssh", output: .quiet).contains("--compress"),
                "no compression unless chosen")
        transfer.compression = "zstd"
        transfer.checksumChoice = "xxh128"
        let arguments = RsyncCommand.arguments(transfer, endpoint: endpoint, shell: "ssh -p 2222", output: .quiet)
        #expect(arguments.contains("--compress-choice=zstd") && arguments.contains("--checksum-choice=xxh128"))
        for option in ["--archive", "--compress", "--checksum", "--delete", "--protect-args", "--stats"] {
            #expect(arguments.contains(option), "missing \(option)")
        }
        #expect(!arguments.contains { $0.hasPrefix("--delete-excluded") })
        #expect(arguments.contains("--filter=- .git/") && arguments.contains("--filter=- *.pyc"))
        #expect(Array(arguments.suffix(3)) == ["--", "/w/release_1/", "frappe@10.0.0.5:/r/release_1/"])
        #expect(!arguments.contains("--relative"))
        #expect(!arguments.contains { $0.hasPrefix("--out-format") })
        #expect(RsyncCommand.arguments(transfer, endpoint: endpoint, shell: "ssh", output: .itemized).contains("--out-format=%i %n%L"))
    }

    @Test("staging: --link-dest names the worker's base release; --bwlimit when set")
    func linkDestAndLimit() {
        let transfer = RsyncTransfer(name: "release", sources: ["/w/r/"], destination: "/ws/.fd-staging-r-x/", excludes: [],
                                     linkDest: "/ws/release_0", bandwidthLimit: 2048)
        let arguments = RsyncCommand.arguments(transfer, endpoint: endpoint, shell: "ssh", output: .quiet)
        #expect(arguments.contains("--link-dest=/ws/release_0"))
        #expect(arguments.contains("--bwlimit=2048"))
    }

    @Test("operator ssh options come first; the safety options cannot be overridden")
    func operatorOptions() {
        var tuned = worker
        tuned.sshOptions = ["ServerAliveInterval=2", "ProxyJump=bastion"]
        let arguments = SSHCommand.commonOptions(SSHEndpoint(worker: tuned, controlPath: "/tmp/x/m"))
        #expect(Array(arguments.prefix(4)) == ["-o", "ServerAliveInterval=2", "-o", "ProxyJump=bastion"])
        #expect(SSHOptionRules.problem("ServerAliveInterval=2") == nil)
        for refused in ["StrictHostKeyChecking=no", "stricthostkeychecking=no", "BatchMode=no", "ControlPath=/tmp/x", "novalue", "=x", "Bad-Key=1"] {
            #expect(SSHOptionRules.problem(refused) != nil, "\(refused)")
        }
    }

    @Test("an IPv6 worker gets brackets in the rsync destination")
    func ipv6() {
        var v6 = worker
        v6.server = "fd00::5"
        let transfer = RsyncTransfer(name: "x", sources: ["/a/"], destination: "/b/", excludes: [])
        let arguments = RsyncCommand.arguments(transfer, endpoint: SSHEndpoint(worker: v6, controlPath: "/tmp/x/m"), shell: "ssh", output: .quiet)
        #expect(arguments.last == "frappe@[fd00::5]:/b/")
    }

    @Test("rsync --stats output is parsed, thousands separators included")
    func stats() {
        let output = """
            Number of files: 23,412 (reg: 18,900, dir: 4,500, link: 12)
            Number of created files: 1,204 (reg: 1,000, dir: 204)
            Number of deleted files: 7 (reg: 7)
            Number of regular files transferred: 1,002
            Total file size: 602,931,200 bytes
            Total transferred file size: 12,345,678 bytes
            Literal data: 12,345,678 bytes
            Matched data: 0 bytes
            File list size: 524,288
            Total bytes sent: 3,456,789
            Total bytes received: 20,112

            sent 3,456,789 bytes  received 20,112 bytes  1,234.00 bytes/sec
            """
        let stats = TransferStats.parse(output)
        #expect(stats.files == 23_412)
        #expect(stats.createdFiles == 1_204)
        #expect(stats.deletedFiles == 7)
        #expect(stats.regularFilesTransferred == 1_002)
        #expect(stats.totalFileSize == 602_931_200)
        #expect(stats.bytesSent == 3_456_789)
        #expect(stats.bytesReceived == 20_112)
    }

    @Test("connection failures are classified into what to do")
    func classify() {
        let command = SSHCommand.openMaster(endpoint)
        func classify(_ line: String) -> RemoteError {
            RemoteError.classifyConnection(.failed(255, line), endpoint: endpoint, command: command)
        }
        #expect(classify("No ED25519 host key is known for [10.0.0.5]:2222 and you have requested strict checking.") == .hostKeyUnknown(host: "10.0.0.5", port: 2222))
        #expect(classify("Host key verification failed.") == .hostKeyUnknown(host: "10.0.0.5", port: 2222))
        #expect(classify("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @") == .hostKeyChanged(host: "10.0.0.5", port: 2222))
        #expect(classify("frappe@10.0.0.5: Permission denied (publickey).") == .authenticationFailed(destination: "frappe@10.0.0.5", port: 2222))
        #expect(classify("ssh: connect to host 10.0.0.5 port 2222: Connection refused") == .unreachable(host: "10.0.0.5", port: 2222, detail: "connect to host 10.0.0.5 port 2222: Connection refused"))
        #expect(RemoteError.hostKeyUnknown(host: "h", port: 2222).errorDescription?.contains("--accept-new-host-key") == true)
        #expect(RemoteError.hostKeyUnknown(host: "h", port: 2222).errorDescription?.contains("ssh-keyscan -p 2222 h") == true)
    }

    @Test("a least-privilege key: offered alone, the script's arguments on standard input after its checksum, rsync without --protect-args and with root-relative paths for options")
    func restrictedKey() throws {
        var restricted = worker
        restricted.restrictedKey = "/home/op/.ssh/frappe-deployer-a.test"
        let endpoint = SSHEndpoint(worker: restricted, controlPath: "/tmp/x/m")
        let options = SSHCommand.commonOptions(endpoint)
        #expect(options.contains("-i") && options.contains("/home/op/.ssh/frappe-deployer-a.test") && options.contains("IdentitiesOnly=yes"))
        let script = RemoteScript(name: "worker", text: "echo hi\n")
        let command = SSHCommand.script(endpoint, script, ["history", restricted.workspacePath, "--limit=5"])
        #expect(command.arguments.last == "frappe-deployer-worker")
        #expect(command.standardInput == script.checksum + "\n" + "history\u{0}\(restricted.workspacePath)\u{0}--limit=5")
        var transfer = RsyncTransfer(name: "release", sources: ["/b/release_2/"], destination: restricted.workspacePath + "/.fd-staging-x",
                                     excludes: [], linkDest: restricted.workspacePath + "/release_1")
        transfer.checksum = false
        let arguments = RsyncCommand.arguments(transfer, endpoint: endpoint, shell: "ssh", output: .quiet)
        #expect(!arguments.contains("--protect-args"))
        #expect(arguments.contains("--link-dest=/release_1"))
        #expect(arguments.last == "\(restricted.sshUser)@\(restricted.server):\(restricted.workspacePath)/.fd-staging-x")
        let plain = RsyncCommand.arguments(transfer, endpoint: self.endpoint, shell: "ssh", output: .quiet)
        #expect(plain.contains("--protect-args") && plain.contains("--link-dest=\(worker.workspacePath)/release_1"))
    }
}
