import Foundation

/// One RQ worker of a worker's live generation, as the site's queue Redis knows it.
public struct RQWorker: Sendable, Equatable {
    public var service: String
    public var state: String
    public var name: String
    public var successful: Int
    public var failed: Int

    public init(service: String, state: String, name: String, successful: Int, failed: Int) {
        self.service = service
        self.state = state
        self.name = name
        self.successful = successful
        self.failed = failed
    }
}

/// What the `jobs` phase read: nil `workers` when no worker service could read the queue (no RQ,
/// no Python in the release: nothing to check).
public struct JobsAnswer: Sendable, Equatable {
    public var workers: [RQWorker]?

    public init(_ facts: WorkerFacts) {
        guard facts.text("rq") == "yes" else { workers = nil; return }
        workers = facts.indexed("rq").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 5, let successful = Int(fields[3]), let failed = Int(fields[4]) else { return nil }
            return RQWorker(service: fields[0], state: fields[1], name: fields[2], successful: successful, failed: failed)
        }
    }

    public init(workers: [RQWorker]?) { self.workers = workers }
}

/// The canary's job check, after its switch (and batch_wait): every worker service of the new
/// generation has an RQ worker listening on the site's queue, and the jobs they ran did not all fail.
public enum CanaryCheck {
    /// nil when the canary passes; else why it does not. `note` says what was seen either way.
    public static func verdict(_ answer: JobsAnswer, services: [String]) -> (problem: String?, note: String) {
        guard let workers = answer.workers else {
            return (nil, "jobs not checked: no RQ worker of the release could read the queue (no RQ in its virtualenv)")
        }
        let listening = workers.filter { ["idle", "busy", "started", "suspended"].contains($0.state) }
        // Under host networking the containers share a host name: such workers count, unnamed.
        let named = Set(listening.map(\.service).filter { $0 != "?" })
        let unnamed = listening.filter { $0.service == "?" }.count
        let wanted = services.filter { $0 != "schedule" }
        let missing = wanted.filter { !named.contains($0) }
        let done = workers.reduce(0) { $0 + $1.successful }
        let failed = workers.reduce(0) { $0 + $1.failed }
        let note = "\(listening.count) RQ worker\(listening.count == 1 ? "" : "s") listening on the site's queue; "
            + "\(done) job\(done == 1 ? "" : "s") done, \(failed) failed since the switch"
        if missing.count > unnamed {
            if unnamed == 0 {
                return ("\(missing.joined(separator: ", ")) of the new release \(missing.count == 1 ? "has" : "have") no RQ worker listening on the site's queue", note)
            }
            return ("only \(listening.count) RQ worker\(listening.count == 1 ? "" : "s") of the new release listen\(listening.count == 1 ? "s" : "") on the site's queue "
                + "for its \(wanted.count) worker services (\(wanted.joined(separator: ", ")))", note)
        }
        if done == 0 && failed > 0 { return ("every job the new release ran failed (\(failed))", note) }
        return (nil, note)
    }
}

extension SyncRunner {
    /// How long a canary's new RQ workers get to show up on the queue (Python and RQ start after
    /// the container does) before a missing one fails the check.
    static let canaryListenWait = Duration.seconds(30)

    /// Reads the canary's RQ workers over a connection of its own (the sync's is closed) and
    /// judges them, asking again every 2 s while a worker service has none listening yet.
    public func canaryCheck(site: String, worker: WorkerSettings, services: [String]) async -> (problem: String?, note: String) {
        do {
            return try await WorkerConnection.using(worker: worker, runner: runner) { connection in
                let end = ContinuousClock.now + Self.canaryListenWait
                var asked = false
                var verdict: (problem: String?, note: String)
                repeat {
                    if asked { try await Task.sleep(for: .seconds(2)) }
                    asked = true
                    let answer = JobsAnswer(try await connection.run(.jobs(site: site), step: SyncStep.canaryCheck.rawValue))
                    verdict = CanaryCheck.verdict(answer, services: services)
                } while verdict.problem != nil && ContinuousClock.now < end && interrupt?.received == nil
                return verdict
            }
        } catch {
            return ("its job check could not run: \(error.userMessage)", "")
        }
    }
}
