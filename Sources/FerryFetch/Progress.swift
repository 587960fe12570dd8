import FerryCore
import Foundation
import Synchronization

/// Download and install progress for a person: a bar with bytes, rate and ETA on a terminal, plain lines
/// otherwise (one when a step starts and one when it ends), nothing at all when quiet.
public final class ProgressReporter: Sendable {
    public enum Style: Sendable { case bar, lines, quiet }

    /// The step being shown. Downloads advance it from several tasks at once.
    private struct Step {
        var label = ""
        var total: UInt64 = 0
        var done: UInt64 = 0
        var started = Date()
        var lastDraw = Date.distantPast
    }

    public let style: Style
    private let step = Mutex(Step())
    private let output: FileHandle

    public init(style: Style? = nil, output: FileHandle = .standardError) {
        self.output = output
        self.style = style ?? (isatty(output.fileDescriptor) != 0 ? .bar : .lines)
    }

    /// The current step's label; empty before the first step and after ``finish(_:)``.
    public var currentLabel: String {
        step.withLock { $0.label }
    }

    /// Starts a step of `total` bytes.
    public func begin(_ label: String, total: UInt64) {
        step.withLock { step in
            step = Step(label: label, total: total)
            // Steps without a byte count (a helper's verify or commit phase) get one line, not two.
            if style == .lines && total > 1 { emit("\(label): \(ProgressReporter.bytes(total))\n") }
        }
    }

    /// Adds `bytes` to the current step.
    public func advance(_ bytes: Int) {
        step.withLock { step in
            step.done += UInt64(max(0, bytes))
            draw(&step, force: false)
        }
    }

    /// Sets the current step's position (for progress reported by the helper).
    public func update(done: UInt64, total: UInt64) {
        step.withLock { step in
            step.done = done
            step.total = total
            draw(&step, force: false)
        }
    }

    /// Ends the current step.
    public func finish(_ message: String? = nil) {
        step.withLock { step in
            switch style {
            case .bar:
                draw(&step, force: true)
                emit("\n")
                if let message { emit(message + "\n") }
            case .lines:
                let seconds = max(Date().timeIntervalSince(step.started), 0.001)
                if step.total > 1 {
                    emit("\(step.label): done, \(ProgressReporter.bytes(step.done)) in "
                         + "\(String(format: "%.1f", seconds)) s\n")
                } else {
                    emit("\(step.label): done\n")
                }
                if let message { emit(message + "\n") }
            case .quiet:
                break
            }
            step.label = ""
        }
    }

    private func draw(_ step: inout Step, force: Bool) {
        guard style == .bar else { return }
        let now = Date()
        guard force || now.timeIntervalSince(step.lastDraw) >= 0.1 else { return }
        step.lastDraw = now
        emit("\r\u{1B}[K" + ProgressReporter.line(label: step.label, done: step.done, total: step.total,
                                                   elapsed: now.timeIntervalSince(step.started)))
    }

    private func emit(_ text: String) { output.write(Data(text.utf8)) }

    /// `label [=====>    ]  45.2 MiB / 120.0 MiB  12.3 MiB/s  ETA 6s`
    public static func line(label: String, done: UInt64, total: UInt64, elapsed: TimeInterval, width: Int = 24)
        -> String
    {
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "=", count: filled) + (filled < width ? ">" : "")
            + String(repeating: " ", count: max(0, width - filled - 1))
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta: String
        if done >= total {
            eta = "done"
        } else if rate > 0 {
            eta = "ETA \(Int((Double(total - done) / rate).rounded(.up)))s"
        } else {
            eta = "ETA --"
        }
        return "\(label) [\(bar)] \(bytes(done)) / \(bytes(total))  \(bytes(UInt64(rate)))/s  \(eta)"
    }

    /// Human-readable bytes in binary units.
    public static func bytes(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }
}
