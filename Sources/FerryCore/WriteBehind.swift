#if canImport(Glibc)
    import Glibc
#endif

/// Starts writeback of a file while it is still being written, so that the closing `fsync` finds little left to
/// do and dirty pages never pile up (a 1 GiB download no longer stalls the desktop at its end).
///
/// Every ``window`` bytes: `sync_file_range(SYNC_FILE_RANGE_WRITE)` on the window just written, then a wait for
/// the window before it. Durability still comes from the caller's `fsync`; this only spreads the work out.
/// The corresponding C function is `sync_file_range(2)`, looked up at run time (Swift's Glibc does not export it).
public struct WriteBehind {
    public static let window: Int64 = 8 << 20

    private typealias SyncFileRange = @convention(c) (Int32, Int64, Int64, UInt32) -> Int32
    private static let syncFileRange: SyncFileRange? = {
        guard let symbol = dlsym(nil, "sync_file_range") else { return nil }
        return unsafeBitCast(symbol, to: SyncFileRange.self)
    }()

    private static let write: UInt32 = 2  // SYNC_FILE_RANGE_WRITE
    private static let waitAll: UInt32 = 1 | 2 | 4  // WAIT_BEFORE | WRITE | WAIT_AFTER

    public let fd: Int32
    private var written: Int64
    private var started: Int64

    /// `offset`: where the file's new bytes begin (a resumed download continues after what is there).
    public init(fd: Int32, offset: Int64 = 0) {
        self.fd = fd
        written = offset
        started = offset
    }

    public mutating func wrote(_ count: Int) {
        written += Int64(count)
        guard written - started >= WriteBehind.window, let syncFileRange = WriteBehind.syncFileRange else { return }
        _ = syncFileRange(fd, started, written - started, WriteBehind.write)
        if started >= WriteBehind.window {
            _ = syncFileRange(fd, started - WriteBehind.window, WriteBehind.window, WriteBehind.waitAll)
        }
        started = written
    }
}
