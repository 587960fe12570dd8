import FerryCore
import Foundation
import NIOCore

/// The slowest transfer the agent sits through: a response body that delivers fewer than ``bytes`` bytes in a
/// window of ``window`` is abandoned, and the next mirror is tried.
///
/// The stall timeout alone lets a hostile server hold a download for hours by sending one byte just before every
/// timeout (the "drip"); the timer's update would wait on it. (The head needs no floor: the HTTP client's read
/// timeout runs until the whole head has arrived.) Windows are counted from the response head and
/// checked as bytes arrive; a gap between arrivals is bounded by the stall timeout, so a drip is cut off at most
/// one window plus one stall timeout after it starts. A server sending just above the floor still gets through:
/// what bounds it is the blob's size divided by the floor's rate.
public struct TransferFloor: Sendable, Equatable {
    /// Fewer bytes than this in one window abandon the response; 0 turns the floor off.
    public var bytes: Int
    public var window: TimeAmount

    public init(bytes: Int, window: TimeAmount) {
        self.bytes = bytes
        self.window = window
    }

    /// 64 KiB a minute (about 1 KiB/s): far below any working link (a GPRS modem is ten times faster), far above
    /// a drip of one byte per stall timeout.
    public static let standard = TransferFloor(bytes: 64 * 1024, window: .seconds(60))

    /// No floor: only the stall timeout and the deadline apply.
    public static let none = TransferFloor(bytes: 0, window: .seconds(60))

    /// `FERRY_MIN_RATE_BYTES` (0 to 2^40, 0 turns the floor off) and `FERRY_MIN_RATE_WINDOW` (seconds, 0.05 to
    /// 3600) override either half of ``standard``; malformed values are ignored, as for `FERRY_STALL_TIMEOUT`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment)
        -> TransferFloor
    {
        var floor = TransferFloor.standard
        if let text = environment["FERRY_MIN_RATE_BYTES"], let bytes = Int(text), bytes >= 0, bytes <= 1 << 40 {
            floor.bytes = bytes
        }
        if let text = environment["FERRY_MIN_RATE_WINDOW"], let seconds = Double(text), seconds >= 0.05,
            seconds <= 3600
        {
            floor.window = .milliseconds(Int64(seconds * 1000))
        }
        return floor
    }

    /// The error a body too slow for this floor ends with.
    func tooSlow(_ url: String) -> FerryError {
        let seconds = String(format: "%g", Double(window.nanoseconds) / 1e9)
        return FerryError.failed("\(url): too slow: fewer than \(bytes) bytes in \(seconds) s (the transfer floor)")
    }
}

/// Counts one response body's bytes against a ``TransferFloor``, window by window.
struct TransferWatch {
    let floor: TransferFloor
    let url: String
    private var windowStart: NIODeadline
    private var inWindow = 0

    init(_ floor: TransferFloor, url: String, now: NIODeadline = .now()) {
        self.floor = floor
        self.url = url
        windowStart = now
    }

    /// Notes `count` bytes that just arrived.
    /// - Throws: `.failed` "too slow" when a whole window has passed with fewer than the floor's bytes.
    mutating func received(_ count: Int, now: NIODeadline = .now()) throws {
        guard floor.bytes > 0 else { return }
        inWindow += count
        guard now - windowStart >= floor.window else { return }
        guard inWindow >= floor.bytes else { throw floor.tooSlow(url) }
        windowStart = now
        inWindow = 0
    }
}
