import Foundation

/// XDG base directories (the XDG Base Directory Specification's defaults when unset or relative).
public enum XDG {
    public static func home(_ env: [String: String]) -> String {
        if let home = env["HOME"], home.hasPrefix("/") { return home }
        if let pw = getpwuid(getuid()), let dir = pw.pointee.pw_dir { return String(cString: dir) }
        return "/"
    }

    private static func base(_ env: [String: String], _ key: String, _ fallback: String) -> String {
        if let value = env[key], value.hasPrefix("/") { return value }
        return home(env) + "/" + fallback
    }

    public static func dataHome(_ env: [String: String]) -> String { base(env, "XDG_DATA_HOME", ".local/share") }
    public static func configHome(_ env: [String: String]) -> String { base(env, "XDG_CONFIG_HOME", ".config") }
    public static func cacheHome(_ env: [String: String]) -> String { base(env, "XDG_CACHE_HOME", ".cache") }
    /// `$XDG_RUNTIME_DIR` when set to an absolute path; the specification gives it no default.
    public static func runtimeDirectory(_ env: [String: String]) -> String? {
        env["XDG_RUNTIME_DIR"].flatMap { $0.hasPrefix("/") ? $0 : nil }
    }
}

/// Joins a prefix and a relative path without doubling slashes.
public func joinPath(_ prefix: String, _ rest: String) -> String {
    let p = prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
    return p + "/" + rest
}
