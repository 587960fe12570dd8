import Foundation

/// The signed statement that binds a manifest digest to an identity: the containers/image "simple signing" JSON.
///
/// ```json
/// {"critical":{"type":"atomic container signature",
///              "image":{"docker-manifest-digest":"sha256:<hex>"},
///              "identity":{"docker-reference":"<identity>"}},
///  "optional":{"creator":"ferry 0.1","timestamp":1764000000}}
/// ```
/// Parsing is strict: unknown keys in `critical` (or in its `image` and `identity` objects) are refused, because
/// a key this code does not understand may restrict the signature in a way it would silently ignore. A key that
/// occurs twice in one object, at any depth, is refused too (``JSONDuplicateKeys``).
public struct Claim: Equatable, Sendable {
    public static let type = "atomic container signature"
    /// Claims are small; anything larger is not a claim.
    public static let maxSize = 64 * 1024

    public var digest: Digest
    public var identity: String
    public var timestamp: Int64?
    public var creator: String?

    public init(digest: Digest, identity: String, timestamp: Int64?, creator: String? = "ferry 0.1") {
        self.digest = digest
        self.identity = identity
        self.timestamp = timestamp
        self.creator = creator
    }

    /// Parses and checks the claim's structure; says nothing about who signed it.
    public init(parsing data: Data) throws {
        guard data.count <= Claim.maxSize else { throw FerryError.signatureInvalid("claim larger than 64 KiB") }
        // JSONSerialization keeps the last of two equal keys and containers/image refuses the document: a claim
        // with `"docker-reference"` twice would mean one identity here and another to every other reader.
        do throws(JSONDuplicateKeys.Finding) {
            try JSONDuplicateKeys.check(data)
        } catch .duplicateKey(let path, let key) {
            throw FerryError.signatureInvalid("claim has a duplicate key \(key.debugDescription) in \(path)")
        } catch .malformed {
            throw FerryError.signatureInvalid("claim is not valid JSON")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw FerryError.signatureInvalid("claim is not valid JSON")
        }
        guard let top = object as? [String: Any], let critical = top["critical"] as? [String: Any] else {
            throw FerryError.signatureInvalid("claim has no \"critical\" object")
        }
        for key in critical.keys where !["type", "image", "identity"].contains(key) {
            throw FerryError.signatureInvalid("claim has unknown critical key \(key.debugDescription)")
        }
        guard let type = critical["type"] as? String, type == Claim.type else {
            throw FerryError.signatureInvalid("claim type is not \"\(Claim.type)\"")
        }
        guard let image = critical["image"] as? [String: Any], image.count == 1,
            let digestString = image["docker-manifest-digest"] as? String
        else {
            throw FerryError.signatureInvalid("claim has a malformed critical.image")
        }
        guard let identityObject = critical["identity"] as? [String: Any], identityObject.count == 1,
            let identity = identityObject["docker-reference"] as? String
        else {
            throw FerryError.signatureInvalid("claim has a malformed critical.identity")
        }
        do {
            digest = try Digest(parsing: digestString)
        } catch {
            throw FerryError.signatureInvalid("claim names a malformed digest")
        }
        self.identity = identity
        timestamp = nil
        creator = nil
        if let optional = top["optional"] {
            guard let optional = optional as? [String: Any] else {
                throw FerryError.signatureInvalid("claim's \"optional\" is not an object")
            }
            if let value = optional["timestamp"] {
                // JSONSerialization gives NSNumber; refuse fractions, booleans and out-of-range values.
                guard let number = value as? NSNumber, !isBoolean(number),
                    let exact = Int64(exactly: number.doubleValue), Double(exact) == number.doubleValue
                else {
                    throw FerryError.signatureInvalid("claim timestamp is not an integer")
                }
                timestamp = exact
            }
            creator = optional["creator"] as? String
        }
    }

    /// The claim as compact JSON with sorted keys: the bytes that get signed.
    public func serialized() -> Data {
        var optional: [String: Any] = [:]
        if let creator { optional["creator"] = creator }
        if let timestamp { optional["timestamp"] = NSNumber(value: timestamp) }
        let object: [String: Any] = [
            "critical": [
                "type": Claim.type,
                "image": ["docker-manifest-digest": digest.description],
                "identity": ["docker-reference": identity],
            ],
            "optional": optional,
        ]
        // Only strings, numbers and dictionaries: serialization cannot fail.
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data()
    }
}

/// Booleans arrive as NSNumber too; a `true` must not pass for the timestamp 1.
private func isBoolean(_ number: NSNumber) -> Bool {
    let type = String(cString: number.objCType)
    return type == "c" || type == "B"
}
