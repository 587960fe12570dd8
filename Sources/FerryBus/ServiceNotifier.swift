internal import CSystemd

/// Tells systemd about the service's state through `sd_notify` (`NOTIFY_SOCKET`).
///
/// Without `NOTIFY_SOCKET` (not started by systemd, or not `Type=notify`) every call does nothing.
public enum ServiceNotifier {
    /// Sends `READY=1`: start-up finished. Returns whether a notification was sent.
    @discardableResult
    public static func ready() -> Bool {
        notify("READY=1")
    }

    /// Sends `STATUS=<text>`, the line `systemctl status` shows. Newlines become spaces, so text derived
    /// from input (a ref, a remote) cannot smuggle in other assignments such as `READY=1` or `MAINPID=`.
    @discardableResult
    public static func status(_ text: String) -> Bool {
        let line = text.map { $0 == "\n" || $0 == "\r" || $0 == "\0" ? " " : $0 }
        return notify("STATUS=" + String(line))
    }

    /// Sends `STOPPING=1`: shutdown began.
    @discardableResult
    public static func stopping() -> Bool {
        notify("STOPPING=1")
    }

    private static func notify(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }
}
