import ArgumentParser

/// The `frappe-deployer` command.
public struct FrappeDeployer: AsyncParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "frappe-deployer",
        abstract: "Deploy Frappe/ERPNext benches and run their background jobs on remote worker servers.",
        version: version,
        subcommands: [RemoteWorker.self]
    )

    public init() {}
}

/// `frappe-deployer remote-worker`: commands for worker servers.
public struct RemoteWorker: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "remote-worker",
        abstract: "Run a site's background workers and scheduler on separate worker servers.",
        subcommands: [Sync.self, Rollback.self, Status.self, Enable.self]
    )

    public init() {}
}

/// Entry point of the executable: parses the command line and runs the chosen command.
public func main() async {
    let run: () async -> Void = FrappeDeployer.main
    await run()
}
