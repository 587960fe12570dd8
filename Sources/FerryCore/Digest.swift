import Crypto
import Foundation

/// A content digest as the OCI image-spec writes it: `algorithm:hex`.
///
/// Only `sha256` and `sha512` are accepted, with lowercase hex of the exact length; anything else is refused
/// so that a digest can be used as a file name without further checks.
public struct Digest: Hashable, Sendable, CustomStringConvertible, Codable, Comparable {
    public enum Algorithm: String, Sendable, Codable {
        case sha256, sha512

        var hexLength: Int { self == .sha256 ? 64 : 128 }
    }

    public let algorithm: Algorithm
    /// Lowercase hex of the exact length for the algorithm.
    public let hex: String

    public init(algorithm: Algorithm, hex: String) throws {
        guard hex.utf8.count == algorithm.hexLength,
            hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else {
            throw FerryError.invalidArgument("malformed \(algorithm.rawValue) digest")
        }
        self.algorithm = algorithm
        self.hex = hex
    }

    /// Parses `sha256:<64 hex>` or `sha512:<128 hex>`.
    public init(parsing string: String) throws {
        guard string.utf8.count <= 7 + 128, let colon = string.firstIndex(of: ":") else {
            throw FerryError.invalidArgument("malformed digest \(String(string.prefix(80)).debugDescription)")
        }
        guard let algorithm = Algorithm(rawValue: String(string[..<colon])) else {
            throw FerryError.invalidArgument("unsupported digest algorithm in \(String(string.prefix(80)).debugDescription)")
        }
        do {
            try self.init(algorithm: algorithm, hex: String(string[string.index(after: colon)...]))
        } catch {
            throw FerryError.invalidArgument("malformed digest \(String(string.prefix(140)).debugDescription)")
        }
    }

    public var description: String { "\(algorithm.rawValue):\(hex)" }

    /// A short form for messages: `sha256:0123456789ab`.
    public var short: String { "\(algorithm.rawValue):\(hex.prefix(12))" }

    /// The digest of `data` with `algorithm`.
    public static func of(_ data: some DataProtocol, algorithm: Algorithm = .sha256) -> Digest {
        var hasher = DigestHasher(algorithm)
        hasher.update(data)
        return hasher.finalize()
    }

    public init(from decoder: Decoder) throws {
        let string = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: string)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.description < rhs.description }
}

/// Incremental hashing for either digest algorithm.
public struct DigestHasher: Sendable {
    private enum State: Sendable {
        case sha256(SHA256)
        case sha512(SHA512)
    }

    private var state: State
    public let algorithm: Digest.Algorithm

    public init(_ algorithm: Digest.Algorithm) {
        self.algorithm = algorithm
        state = algorithm == .sha256 ? .sha256(SHA256()) : .sha512(SHA512())
    }

    public mutating func update(_ data: some DataProtocol) {
        switch state {
        case .sha256(var h):
            h.update(data: data)
            state = .sha256(h)
        case .sha512(var h):
            h.update(data: data)
            state = .sha512(h)
        }
    }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        switch state {
        case .sha256(var h):
            h.update(bufferPointer: buffer)
            state = .sha256(h)
        case .sha512(var h):
            h.update(bufferPointer: buffer)
            state = .sha512(h)
        }
    }

    public func finalize() -> Digest {
        let bytes: [UInt8]
        switch state {
        case .sha256(let h): bytes = Array(h.finalize())
        case .sha512(let h): bytes = Array(h.finalize())
        }
        // Built from our own hash output, so the hex is always well-formed.
        return Digest(uncheckedAlgorithm: algorithm, hex: bytes.hexString)
    }
}

extension Digest {
    fileprivate init(uncheckedAlgorithm: Algorithm, hex: String) {
        self.algorithm = uncheckedAlgorithm
        self.hex = hex
    }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hex.
    public var hexString: String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
