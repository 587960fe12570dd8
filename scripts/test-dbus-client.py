#!/usr/bin/python3
"""An independent D-Bus client (python3-dbus) for Ferry's helper tests: sends calls a well-behaved agent
never would. Prints "OK <reply>" or "ERROR <dbus error name> <message>"; exits 0 either way.

  test-dbus-client.py ADDRESS deploy DIR REMOTE REF [OPTIONS_JSON]
  test-dbus-client.py ADDRESS uninstall REF [OPTIONS_JSON]
  test-dbus-client.py ADDRESS configure NAME [SETTINGS_JSON]
  test-dbus-client.py ADDRESS apply-log DIR REMOTE [OPTIONS_JSON]
  test-dbus-client.py ADDRESS list
  test-dbus-client.py ADDRESS introspect
      prints the document the helper's Introspect returns, as it is (no "OK")
  test-dbus-client.py ADDRESS raw METHOD SIGNATURE ARGS_JSON
  test-dbus-client.py ADDRESS deploy-many N DIR REMOTE REF
      N Deploy calls sent without waiting, then one more whose answer is printed (one connection, so the helper
      receives them in this order)
  test-dbus-client.py ADDRESS forge-progress REF PHASE SECONDS USER
      for SECONDS, Progress(REF, PHASE, 1, 2) signals with the helper's path and interface: broadcast, and unicast
      to every connection of USER; prints "OK sent N"

An argument written json:"..." is decoded as a JSON string first (to pass NUL bytes).
OPTIONS_JSON maps keys to [type, value] pairs so tests can send wrong variant types, e.g.
{"allow-downgrade": ["s", "yes"]}. Types: s, b, u, i, t, as, ay; ay@ reads the bytes from a file, aay@ from a
list of files (for values too large for a command line).
"""
import json, os, pwd, sys, time
import dbus

def variant(pair):
    t, v = pair
    wrap = {"s": dbus.String, "b": dbus.Boolean, "u": dbus.UInt32, "i": dbus.Int32, "t": dbus.UInt64}
    if t in wrap:
        return wrap[t](v, variant_level=1)
    if t == "as":
        return dbus.Array([dbus.String(x) for x in v], signature="s", variant_level=1)
    if t == "ay":
        return dbus.ByteArray(bytes(v) if isinstance(v, list) else v.encode(), variant_level=1)
    if t == "ay@":
        return dbus.ByteArray(open(v, "rb").read(), variant_level=1)
    if t == "aay@":
        return dbus.Array([dbus.ByteArray(open(p, "rb").read()) for p in v], signature="ay", variant_level=1)
    raise SystemExit("unknown type " + t)

def options(text):
    return dbus.Dictionary({k: variant(p) for k, p in json.loads(text or "{}").items()}, signature="sv")

def owner(driver, name):
    """The uid of connection `name`, or None when it is gone."""
    try:
        return driver.GetConnectionUnixUser(name)
    except dbus.exceptions.DBusException:
        return None

def main():
    # An argument "json:<JSON string>" is decoded first, so tests can pass strings argv cannot (NUL bytes).
    address, command = sys.argv[1], sys.argv[2]
    args = [json.loads(a[5:]) if a.startswith("json:") else a for a in sys.argv[3:]]
    bus = dbus.bus.BusConnection(address)
    helper = bus.get_object("dev.ferry.Helper1", "/dev/ferry/Helper1")
    iface = dbus.Interface(helper, "dev.ferry.Helper1")
    try:
        if command == "deploy":
            fd = os.open(args[0], os.O_RDONLY | os.O_DIRECTORY)
            reply = iface.Deploy(dbus.types.UnixFd(fd), args[1], args[2],
                                 options(args[3] if len(args) > 3 else "{}"), timeout=600)
        elif command == "apply-log":
            fd = os.open(args[0], os.O_RDONLY | os.O_DIRECTORY)
            reply = iface.ApplyLog(dbus.types.UnixFd(fd), args[1], options(args[2] if len(args) > 2 else "{}"),
                                   timeout=600)
        elif command == "uninstall":
            reply = iface.Uninstall(args[0], options(args[1] if len(args) > 1 else "{}"), timeout=600)
        elif command == "configure":
            reply = iface.ConfigureRemote(args[0], options(args[1] if len(args) > 1 else "{}"), timeout=600)
        elif command == "list":
            reply = iface.ListInstalled()
        elif command == "introspect":
            sys.stdout.write(helper.Introspect(dbus_interface="org.freedesktop.DBus.Introspectable"))
            return
        elif command == "deploy-many":
            count, fd = int(args[0]), os.open(args[1], os.O_RDONLY | os.O_DIRECTORY)
            for _ in range(count):
                message = dbus.lowlevel.MethodCallMessage("dev.ferry.Helper1", "/dev/ferry/Helper1",
                                                          "dev.ferry.Helper1", "Deploy")
                message.append(dbus.types.UnixFd(fd), args[2], args[3], options("{}"), signature="hssa{sv}")
                bus.send_message(message)
            bus.flush()
            reply = iface.Deploy(dbus.types.UnixFd(fd), args[2], args[3], options("{}"), timeout=600)
        elif command == "forge-progress":
            ref, phase, seconds, uid = args[0], args[1], float(args[2]), pwd.getpwnam(args[3]).pw_uid
            driver = dbus.Interface(bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus"),
                                    "org.freedesktop.DBus")
            sent, deadline = 0, time.monotonic() + seconds
            while time.monotonic() < deadline:
                targets = [None] + [n for n in driver.ListNames() if n.startswith(":") and owner(driver, n) == uid]
                for target in targets:
                    signal = dbus.lowlevel.SignalMessage("/dev/ferry/Helper1", "dev.ferry.Helper1", "Progress")
                    signal.append(ref, phase, dbus.UInt64(1), dbus.UInt64(2), signature="sstt")
                    if target:
                        signal.set_destination(target)
                    bus.send_message(signal)
                    sent += 1
                bus.flush()
                time.sleep(0.02)
            reply = "sent %d" % sent
        elif command == "raw":
            method, signature, values = args[0], args[1], json.loads(args[2])
            reply = helper.get_dbus_method(method, "dev.ferry.Helper1")(*values, signature=signature, timeout=600)
        else:
            raise SystemExit("unknown command " + command)
        print("OK", json.dumps(reply, default=str))
    except dbus.exceptions.DBusException as e:
        print("ERROR", e.get_dbus_name(), e.get_dbus_message())
    except (TypeError, ValueError) as e:
        print("ERROR client-refused", e)

main()
