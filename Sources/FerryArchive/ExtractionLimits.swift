/// Caps on what one image's layers may put on disk.
///
/// The entry size is checked per file against its tar header before any byte is written; the total size and
/// the entry count add up over every layer applied by one ``LayerExtractor`` (one image). A layer whose
/// decompressed stream is longer than `maxTotalSize` plus 8 KiB per allowed entry is refused too, so a
/// decompression bomb hidden in tar padding cannot spin the extractor forever.
/// Stops: a small compressed layer that fills the disk (zip bomb), or millions of empty files exhausting inodes.
public struct ExtractionLimits: Sendable, Equatable {
    /// Largest regular file, in bytes (default 8 GiB).
    public var maxEntrySize: Int64
    /// Largest sum of regular file sizes over all layers, in bytes (default 32 GiB).
    public var maxTotalSize: Int64
    /// Most entries (files, directories, links, whiteouts) over all layers (default 1 000 000).
    public var maxEntries: Int
    /// Longest entry path or link target, in bytes (default 4096, Linux's PATH_MAX).
    public var maxPathLength: Int

    public init(
        maxEntrySize: Int64 = 8 << 30,
        maxTotalSize: Int64 = 32 << 30,
        maxEntries: Int = 1_000_000,
        maxPathLength: Int = 4096
    ) {
        self.maxEntrySize = maxEntrySize
        self.maxTotalSize = maxTotalSize
        self.maxEntries = maxEntries
        self.maxPathLength = maxPathLength
    }

    /// The defaults above.
    public static let standard = ExtractionLimits()

    /// Most bytes a single layer's uncompressed tar stream may have (data, headers, padding).
    var maxStreamSize: Int64 {
        let (headers, overflow1) = Int64(maxEntries).multipliedReportingOverflow(by: 8192)
        let (sum, overflow2) = maxTotalSize.addingReportingOverflow(headers)
        if overflow1 || overflow2 { return Int64.max }
        let (padded, overflow3) = sum.addingReportingOverflow(1 << 20)
        return overflow3 ? Int64.max : padded
    }
}
