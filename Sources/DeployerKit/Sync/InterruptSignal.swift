import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT/SIGTERM turned into an event the sync handles at safe points, instead of dying
/// half-way: staging is cancelled, a running switch is let finish, the lock is released.
public final class InterruptSignal: Sendable {
    private struct State {
        var signal: Int32?
        var handlers: [@Sendable (Int32) -> Void] = []
    }
    private let state = Mutex(State())
    private nonisolated(unsafe) var sources: [any DispatchSourceSignal] = []

    public init() {}

    /// The signal received, if any.
    public var received: Int32? { state.withLock { $0.signal } }

    /// Catches SIGINT and SIGTERM from now on (the default action, dying at once, is replaced).
    public func install() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in self?.raise(number) }
            source.resume()
            sources.append(source)
        }
    }

    /// Records `signal` and runs the handlers (once; later signals only repeat the record).
    public func raise(_ signal: Int32) {
        let handlers = state.withLock { state -> [@Sendable (Int32) -> Void] in
            guard state.signal == nil else { return [] }
            state.signal = signal
            defer { state.handlers = [] }
            return state.handlers
        }
        handlers.forEach { $0(signal) }
    }

    /// Runs `handler` when a signal arrives (at once if one already has).
    public func onRaise(_ handler: @escaping @Sendable (Int32) -> Void) {
        let already = state.withLock { state -> Int32? in
            if state.signal == nil { state.handlers.append(handler) }
            return state.signal
        }
        if let already { handler(already) }
    }
}
