/// How to reach one worker with OpenSSH, and where its shared master connection lives.
public struct SSHEndpoint: Sendable, Equatable {
    public var host: String
    public var user: String
    public var port: Int
    /// `ssh -F FILE`; nil lets OpenSSH read the user's own ~/.ssh/config.
    public var configFile: String?
    public var acceptNewHostKey: Bool
    /// The control socket every command of one sync shares (a private, short path).
    public var controlPath: String
    /// Extra `-o` options from the operator.
    public var options: [String]
    /// A least-privilege key (`restricted_key`): offered first, and the worker only runs the tool's
    /// dispatcher for it (`remote-worker authorize`), so commands take its form.
    public var restrictedKey: String?
    /// The workspace the restricted key is confined to (rrsync's root there).
    public var workspace: String

    public init(worker: WorkerSettings, controlPath: String) {
        self.host = worker.server
        self.user = worker.sshUser
        self.port = worker.sshPort
        self.configFile = worker.sshConfig
        self.acceptNewHostKey = worker.acceptNewHostKey
        self.controlPath = controlPath
        self.options = worker.sshOptions
        self.restrictedKey = worker.restrictedKey
        self.workspace = worker.workspacePath
    }

    public var destination: String { "\(user)@\(host)" }
}

/// Builds the argument arrays of every ssh invocation; pure, so they are tested as arrays.
public enum SSHCommand {
    /// Options every ssh call carries: batch mode (never prompt), host keys always checked, the
    /// port, and keepalives so a dead link fails instead of hanging.
    public static func commonOptions(_ endpoint: SSHEndpoint) -> [String] {
        var options: [String] = []
        if let config = endpoint.configFile { options += ["-F", config] }
        // The operator's own options come first: for ssh the first value given wins.
        options += endpoint.options.flatMap { ["-o", $0] }
        if let key = endpoint.restrictedKey { options += ["-i", key, "-o", "IdentitiesOnly=yes"] }
        options += [
            "-p", String(endpoint.port),
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=\(endpoint.acceptNewHostKey ? "accept-new" : "yes")",
            "-o", "ConnectTimeout=20",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
            "-o", "ControlPath=\(endpoint.controlPath)",
            // Never a terminal (`RequestTTY force` in a config would hang the script on its
            // input) and never a configured RemoteCommand in place of the tool's own.
            "-o", "RequestTTY=no",
            "-o", "RemoteCommand=none",
        ]
        return options
    }

    /// How long an unused master connection outlives its last command: a killed sync leaves none
    /// behind for longer (and its worker lock is known dead from then on).
    public static let controlPersistSeconds = 15

    /// Opens the master connection and backgrounds it once authenticated (`-f -N`). It closes by
    /// itself after `controlPersistSeconds` without use, so a killed sync leaves no connection behind.
    public static func openMaster(_ endpoint: SSHEndpoint) -> Command {
        Command("ssh", commonOptions(endpoint) + [
            "-o", "ControlMaster=yes", "-o", "ControlPersist=\(controlPersistSeconds)", "-f", "-N",
            "-l", endpoint.user, "--", endpoint.host,
        ])
    }

    /// Runs `remoteArguments` on the worker over the master; each argument is quoted exactly once.
    public static func remote(_ endpoint: SSHEndpoint, _ remoteArguments: [String], standardInput: String? = nil) -> Command {
        Command("ssh", commonOptions(endpoint) + [
            "-o", "ControlMaster=no", "-l", endpoint.user, "--", endpoint.host,
            ShellQuote.commandLine(remoteArguments),
        ], standardInput: standardInput)
    }

    /// Runs a shipped script on the worker: `sh -s -- ARGS` with the script on standard input.
    /// Through a least-privilege key the worker runs its authorized copy instead: the command is
    /// `frappe-deployer-worker`, and standard input names the script by its checksum, then gives
    /// the arguments NUL-separated (the dispatcher never parses a command line).
    public static func script(_ endpoint: SSHEndpoint, _ script: RemoteScript, _ arguments: [String]) -> Command {
        if endpoint.restrictedKey != nil {
            return remote(endpoint, [restrictedCommand], standardInput: script.checksum + "\n" + arguments.joined(separator: "\u{0}"))
        }
        return remote(endpoint, ["sh", "-s", "--"] + arguments, standardInput: script.text)
    }

    /// The one command a least-privilege key's dispatcher runs besides rsync.
    public static let restrictedCommand = "frappe-deployer-worker"


    /// Asks whether the master is running.
    public static func checkMaster(_ endpoint: SSHEndpoint) -> Command {
        Command("ssh", commonOptions(endpoint) + ["-O", "check", "-l", endpoint.user, "--", endpoint.host])
    }

    /// Asks the master to exit.
    public static func closeMaster(_ endpoint: SSHEndpoint) -> Command {
        Command("ssh", commonOptions(endpoint) + ["-O", "exit", "-l", endpoint.user, "--", endpoint.host])
    }

    /// The `rsync -e` value: ssh with the same options, over the same master.
    ///
    /// rsync splits this string on spaces and honours single quotes (but not backslashes), so an
    /// argument with a single quote cannot be passed; such paths are refused when planning.
    public static func rsyncShell(_ endpoint: SSHEndpoint) throws(RsyncShellError) -> String {
        let arguments = ["ssh"] + commonOptions(endpoint) + ["-o", "ControlMaster=no"]
        return try arguments.map { (argument: String) throws(RsyncShellError) -> String in
            if argument.contains("'") { throw RsyncShellError(argument: argument) }
            let plain = !argument.isEmpty && !argument.contains(where: { $0 == " " || $0 == "\"" || $0 == "\t" })
            return plain ? argument : "'\(argument)'"
        }.joined(separator: " ")
    }
}

/// An ssh argument that rsync's `-e` parser cannot carry.
public struct RsyncShellError: Error, Equatable {
    public var argument: String
}
