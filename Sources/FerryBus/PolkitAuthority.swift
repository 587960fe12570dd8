/// polkit's answer to one authorization check.
public struct PolkitResult: Sendable, Equatable {
    /// The subject may do it now.
    public var isAuthorized: Bool
    /// The subject could be authorized by authenticating (only meaningful without interaction).
    public var isChallenge: Bool
    /// Details polkit returned (`polkit.retains_authorization_after_challenge`, …).
    public var details: [String: String]

    public init(isAuthorized: Bool, isChallenge: Bool, details: [String: String] = [:]) {
        self.isAuthorized = isAuthorized
        self.isChallenge = isChallenge
        self.details = details
    }
}

/// A client of the polkit authority (`org.freedesktop.PolicyKit1.Authority` on the system bus).
public struct PolkitAuthority: Sendable {
    public let connection: BusConnection

    public init(connection: BusConnection) {
        self.connection = connection
    }

    /// Asks whether the connection `busName` may perform `action`
    /// (`CheckAuthorization((sa{sv})sa{ss}us) → (bba{ss})` with a `system-bus-name` subject).
    ///
    /// `busName` must be the caller's unique name as the bus stamped it on its message
    /// (``BusMethodCall/sender``): polkit then looks the process and user up from the bus daemon itself,
    /// which stops a caller from passing off another process's pid or uid as its own.
    /// `details` are shown in the authentication dialog and visible to rules (`action.lookup("ref")`).
    /// With `allowInteraction` polkit may ask the user to authenticate, which can take minutes, so the call
    /// waits up to `timeout` (default: 25 s without interaction, 5 minutes with it).
    public func checkAuthorization(
        action: String, busName: String, details: [String: String] = [:], allowInteraction: Bool,
        timeout: Duration? = nil
    ) throws -> PolkitResult {
        let subject = BusValue.structure([
            .string("system-bus-name"),
            .vardict(["name": .string(busName)]),
        ])
        let flags: UInt32 = allowInteraction ? 1 : 0  // AllowUserInteraction
        let reply = try connection.call(
            destination: "org.freedesktop.PolicyKit1", path: "/org/freedesktop/PolicyKit1/Authority",
            interface: "org.freedesktop.PolicyKit1.Authority", member: "CheckAuthorization",
            arguments: [subject, .string(action), .stringDictionary(details), .uint32(flags), .string("")],
            timeout: timeout ?? (allowInteraction ? .seconds(300) : .seconds(25)))
        guard reply.count == 1, let fields = reply[0].structureValue, fields.count == 3,
            let authorized = fields[0].boolValue, let challenge = fields[1].boolValue,
            let resultDetails = fields[2].stringDictionaryValue
        else {
            throw BusError.invalidArgs(
                "CheckAuthorization returned (\(BusValue.signature(of: reply))), not ((bba{ss}))")
        }
        return PolkitResult(isAuthorized: authorized, isChallenge: challenge, details: resultDetails)
    }
}
