/// The steps of a sync and of a rollback, as people see them in progress and in the summary.
public enum SyncStep: String, Sendable, CaseIterable {
    case connect = "connect"
    case preflight = "check worker"
    case stage = "stage"
    case stopServices = "stop services"
    case transfer = "transfer"
    case link = "link configs"
    case switchRelease = "switch"
    case startServices = "start services"
    case prune = "prune"
    case compare = "compare release"
    case restart = "restart services"
    case beforeSync = "before_sync hook"
    case afterSwitch = "after_switch hook"
    case canaryCheck = "canary check"
}
