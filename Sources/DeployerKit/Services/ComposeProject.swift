/// A docker compose project on this host (an FM bench or FM's global services), driven through
/// the docker CLI the operator already uses, as FM itself does.
public struct ComposeProject: Sendable, Equatable {
    /// The directory compose derives the project name from (FM runs compose there).
    public var directory: String
    public var file: String

    public init(directory: String, file: String) {
        self.directory = directory
        self.file = file
    }

    private func compose(_ arguments: [String]) -> Command {
        Command("docker", ["compose", "--project-directory", directory, "-f", file] + arguments)
    }

    /// `ps -q SERVICE`: prints the id of the service's running container, nothing when it is not running.
    public func runningContainer(_ service: String) -> Command { compose(["ps", "-q", service]) }

    /// `port SERVICE PORT`: prints `ADDRESS:PORT` where the running container publishes `containerPort`.
    public func publishedPort(_ service: String, containerPort: Int) -> Command {
        compose(["port", service, String(containerPort)])
    }

    /// `ps --status running --services`: the services with a running container, one per line.
    public func runningServices() -> Command { compose(["ps", "--status", "running", "--services"]) }

    /// Recreates one service from the file as it is now, leaving every other service running.
    public func recreate(_ service: String) -> Command { compose(["up", "-d", "--no-deps", service]) }
}
