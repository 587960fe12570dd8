#!/usr/bin/python3
"""An independent D-Bus client (python3-dbus) for Ferry's helper tests: sends calls a well-behaved agent
never would. Prints "OK <reply>" or "ERROR <dbus error name> <message>"; exits 0 either way.

  test-dbus-client.py ADDRESS deploy DIR REMOTE REF [OPTIONS_JSON]
  test-dbus-client.py ADDRESS uninstall REF [OPTIONS_JSON]
  test-dbus-client.py ADDRESS configure NAME [SETTINGS_JSON]
  test-dbus-client.py ADDRESS list
  test-dbus-client.py ADDRESS raw METHOD SIGNATURE ARGS_JSON

An argument written json:"..." is decoded as a JSON string first (to pass NUL bytes).
OPTIONS_JSON maps keys to [type, value] pairs so tests can send wrong variant types, e.g.
{"allow-downgrade": ["s", "yes"]}. Types: s, b, u, i, t, as, ay.
"""
import json, os, sys
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
    raise SystemExit("unknown type " + t)

def options(text):
    return dbus.Dictionary({k: variant(p) for k, p in json.loads(text or "{}").items()}, signature="sv")

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
        elif command == "uninstall":
            reply = iface.Uninstall(args[0], options(args[1] if len(args) > 1 else "{}"), timeout=600)
        elif command == "configure":
            reply = iface.ConfigureRemote(args[0], options(args[1] if len(args) > 1 else "{}"), timeout=600)
        elif command == "list":
            reply = iface.ListInstalled()
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
