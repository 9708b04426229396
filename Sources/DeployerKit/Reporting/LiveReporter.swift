import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A live display for a terminal: one line per worker (its step, and during a transfer the files
/// and bytes so far and the rate), redrawn in place at most ten times a second. Used only when
/// standard error is a TTY; logs and CI get `TerminalReporter`'s plain lines.
public final class LiveReporter: SyncReporting {
    private struct Row {
        var host: String
        var text: String
        var trees: [String: RsyncProgress] = [:]
        var step = ""
    }

    private struct State {
        var rows: [Row] = []
        var drawn = 0
        var lastDraw = ContinuousClock.now - .seconds(1)
    }

    private let state = Mutex(State())
    private let write: @Sendable (String) -> Void

    public init(hosts: [String], write: (@Sendable (String) -> Void)? = nil) {
        self.write = write ?? { text in Output.standardError(text, newline: false) }
        state.withLock { $0.rows = hosts.map { Row(host: $0, text: "waiting") } }
    }

    public var wantsProgress: Bool { true }

    public func report(_ event: SyncEvent) {
        state.withLock { state in
            var force = true
            switch event {
            case .started:
                return
            case .stepStarted(let step, let host, let detail):
                update(&state, host) { row in
                    row.step = step.rawValue
                    row.trees = [:]
                    row.text = "\(step.rawValue)..." + (detail.isEmpty ? "" : " \(detail)")
                }
            case .stepFinished(let step, let host, let seconds, let detail):
                update(&state, host) { row in
                    row.text = String(format: "%@ done in %.1f s", step.rawValue as NSString, seconds) + (detail.isEmpty ? "" : ": \(detail)")
                }
            case .stepFailed(let step, let host, let seconds):
                update(&state, host) { row in row.text = String(format: "%@ FAILED after %.1f s", step.rawValue as NSString, seconds) }
            case .output:
                return
            case .waiting(let host, let reason):
                update(&state, host) { row in row.text = "waiting: \(reason)" }
            case .note(let host, let text):
                update(&state, host) { row in row.text = text }
            case .progress(let host, let tree, let progress):
                force = false
                update(&state, host) { row in
                    row.trees[tree] = progress
                    let files = row.trees.values.reduce(0) { $0 + $1.files }
                    let bytes = row.trees.values.reduce(Int64(0)) { $0 + $1.bytes }
                    let release = row.trees["release"].map { " (\($0.percent)% of release)" } ?? ""
                    row.text = "\(row.step)... \(files) files, \(ByteCount.format(bytes))\(release), \(progress.rate)"
                }
            }
            let now = ContinuousClock.now
            guard force || now - state.lastDraw >= .milliseconds(100) else { return }
            state.lastDraw = now
            draw(&state)
        }
    }

    /// Leaves the display as it is, with the cursor below it (call before printing a summary).
    public func finish() {
        state.withLock { draw(&$0) }
    }

    private func update(_ state: inout State, _ host: String, _ change: (inout Row) -> Void) {
        if let index = state.rows.firstIndex(where: { $0.host == host }) {
            change(&state.rows[index])
        } else {
            var row = Row(host: host, text: "")
            change(&row)
            state.rows.append(row)
        }
    }

    private func draw(_ state: inout State) {
        let width = Self.terminalWidth()
        var text = state.drawn > 0 ? "\u{1B}[\(state.drawn)A" : ""
        for row in state.rows {
            let line = "[\(row.host)] \(row.text)"
            text += "\r\u{1B}[2K" + String(line.prefix(max(20, width - 1))) + "\n"
        }
        state.drawn = state.rows.count
        write(text)
    }

    static func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 100
    }
}
