import ArgumentParser
import DeployerKit

/// The `frappe-deployer` command.
public struct FrappeDeployer: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "frappe-deployer",
        abstract: "Deploy Frappe/ERPNext benches and run their background jobs on remote worker servers.",
        version: "\(version) (commit \(BuildInfo.commit))",
        subcommands: [RemoteWorker.self]
    )

    public init() {}
}

/// `frappe-deployer remote-worker`: commands for worker servers.
public struct RemoteWorker: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "remote-worker",
        abstract: "Run a site's background workers and scheduler on separate worker servers.",
        subcommands: [Sync.self, Rollback.self, Status.self, History.self, Watch.self, Authorize.self, Enable.self]
    )

    public init() {}
}

/// Entry point of the executable: parses the command line and runs the chosen command. A command
/// line that cannot be parsed exits 64 with the parser's message; with `--json` among the
/// arguments, standard output gets one JSON document saying so as well.
public func main() async {
    let arguments = Array(CommandLine.arguments.dropFirst())
    do {
        var command = try FrappeDeployer.parseAsRoot(arguments)
        if var asyncCommand = command as? AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch {
        let code = FrappeDeployer.exitCode(for: error)
        // ExitCode: the command printed its own result (its JSON too); help and --version are no failure.
        if !(error is ExitCode), code != .success, UsageFailure.wantsJSON(arguments) {
            let message = FrappeDeployer.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid command line"
            Output.standardOutput(JSONOutput.render(JSONRunReport(command: UsageFailure.command(arguments), site: nil,
                                                                  exitCode: code.rawValue, error: message)))
        }
        FrappeDeployer.exit(withError: error)
    }
}

/// What a command line that failed to parse asked for, read from its raw words.
enum UsageFailure {
    /// `--json` before any `--` (after it, words are positional).
    static func wantsJSON(_ arguments: [String]) -> Bool {
        arguments.prefix { $0 != "--" }.contains("--json")
    }

    /// The remote-worker command named (`sync`, `dry-run` with --dry-run), else the tool's name.
    static func command(_ arguments: [String]) -> String {
        guard let index = arguments.firstIndex(of: "remote-worker"), index + 1 < arguments.count else { return "frappe-deployer" }
        let name = arguments[index + 1]
        return name == "sync" && arguments.contains("--dry-run") ? "dry-run" : name
    }
}
