/// The introspection document served for `/dev/ferry/Helper1`; the same text ships as
/// `dbus/dev.ferry.Helper1.xml` (a test checks they agree).
enum Introspection {
    static let xml = #"""
<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<!-- ferry-helper: installs verified OCI images system-wide. Every call is authorized by polkit
     (dev.ferry.install, .update, .downgrade, .uninstall, .configure-remote); errors are dev.ferry.Error.*. -->
<node name="/dev/ferry/Helper1">
  <interface name="dev.ferry.Helper1">
    <!-- Installs, updates or downgrades REF from REMOTE out of the staged OCI layout open as STAGING
         (a directory descriptor). Options: allow-downgrade (b), interactive (b), switch-remote (b). Returns the manifest digest. -->
    <method name="Deploy">
      <arg name="staging" type="h" direction="in"/>
      <arg name="remote" type="s" direction="in"/>
      <arg name="ref" type="s" direction="in"/>
      <arg name="options" type="a{sv}" direction="in"/>
      <arg name="digest" type="s" direction="out"/>
    </method>
    <!-- Removes an installed ref. Options: interactive (b). -->
    <method name="Uninstall">
      <arg name="ref" type="s" direction="in"/>
      <arg name="options" type="a{sv}" direction="in"/>
    </method>
    <!-- Switches REF to the deployment kept before its last change (polkit dev.ferry.downgrade).
         Options: interactive (b). Returns the manifest digest now installed. -->
    <method name="Rollback">
      <arg name="ref" type="s" direction="in"/>
      <arg name="options" type="a{sv}" direction="in"/>
      <arg name="digest" type="s" direction="out"/>
    </method>
    <!-- Writes /etc/ferry/remotes.d/NAME.toml. Settings: url (s), registry (b), mirrors (as),
         ed25519-keys (as), gpg-keys (aay), tuf-root (ay), signature-lookaside (s),
         reset-rollback-state (b), interactive (b). An empty dictionary removes the remote. -->
    <method name="ConfigureRemote">
      <arg name="name" type="s" direction="in"/>
      <arg name="settings" type="a{sv}" direction="in"/>
    </method>
    <!-- Installed refs: (ref, remote, digest, deployment path, claim timestamp). -->
    <method name="ListInstalled">
      <arg name="installed" type="a(sssst)" direction="out"/>
    </method>
    <!-- Deploy progress: phase is copy, verify, extract or commit. -->
    <signal name="Progress">
      <arg name="ref" type="s"/>
      <arg name="phase" type="s"/>
      <arg name="done" type="t"/>
      <arg name="total" type="t"/>
    </signal>
    <property name="Version" type="u" access="read"/>
  </interface>
</node>
"""#
}
