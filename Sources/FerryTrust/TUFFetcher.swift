import FerryCore
import Foundation

/// Where a TUF client gets repository files: HTTP for the agent, staged files for the root helper.
public protocol TUFFetcher: Sendable {
    /// Returns the body at `url`, `nil` when the repository has no such file (404, 403, missing file).
    /// Throws on a network or I/O failure, and when the body is longer than `maxLength` bytes: an implementation
    /// must not read more than `maxLength` (+1 to notice) bytes, so that an endless response cannot fill memory.
    func fetch(_ url: String, maxLength: Int) async throws -> Data?
}

/// Serves a TUF repository from an open directory: the part of a URL after `baseURL` is the file's path
/// beneath the directory, used verbatim (role names arrive percent-encoded, so `/` in a role name cannot
/// climb out). This is how the root helper replays the files the agent staged: they are its only network.
///
/// Files are opened with ``DirectoryHandle`` (no symlinks, regular files only, `..` refused).
public struct DirectoryTUFFetcher: TUFFetcher {
    public let directory: DirectoryHandle
    public let baseURL: String
    public let policy: DirectoryHandle.FilePolicy

    /// - Parameters:
    ///   - directory: the directory the files are in.
    ///   - baseURL: the prefix the updater's URLs start with (its metadata or target base URL); a URL that
    ///     does not start with it is a missing file.
    public init(directory: DirectoryHandle, baseURL: String = "", policy: DirectoryHandle.FilePolicy = .plain) {
        self.directory = directory
        self.baseURL = baseURL
        self.policy = policy
    }

    public func fetch(_ url: String, maxLength: Int) async throws -> Data? {
        guard url.hasPrefix(baseURL) else { return nil }
        let path = String(url.dropFirst(baseURL.count))
        guard (try? DirectoryHandle.components(of: path)) != nil else { return nil }
        do {
            return try directory.readFile(path, maxSize: maxLength, policy: policy)
        } catch let error as FerryError where error.cause == EFBIG {
            throw FerryError.failed("\(path) is longer than the \(maxLength) bytes allowed")
        }
    }
}
