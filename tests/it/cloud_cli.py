#!/usr/bin/env python3
# A stand-in for gcloud and az (it acts as the one it is named after), for tests/it/cloud_sweep.rs:
# the firewall rules are kept in PROG-rules.json beside it, so knockd's door commands and the
# daemon act on the same rules, and every call is appended to calls.log as one JSON line (argv,
# the caller's /proc comm, exit code). It answers the calls knock-totp makes as the real CLIs
# do, and refuses anything else (unknown flags included) so a changed call shows up:
#   gcloud compute firewall-rules list [--filter=name~REGEX] --format=json
#          (rules without a description have no "description" key)
#   gcloud compute firewall-rules create NAME --network=... --description=... [--quiet]
#          (an existing NAME fails)
#   gcloud compute firewall-rules delete NAME... [--quiet]
#          (a missing NAME fails and deletes nothing)
#   az network nsg rule list --resource-group rg1 --nsg-name nsg1 [--output json]
#          (or --query '[].priority' --output tsv; "description" is null when none)
#   az network nsg rule create ... --name N --priority P [--description D] [--output none]
#          (a priority another rule holds fails: SecurityRuleConflict; an existing N is replaced)
#   az network nsg rule delete ... --name N [--output none]    (a missing N succeeds)
# and, as no-ops, the one-time script's gcloud compute instances add-tags, az network asg and
# az network nic calls. The rules named in the file `vanish` beside it are deleted right after
# the next JSON list (as by a door's stop command that runs between the daemon's list and its
# delete), and the file with them.
import fcntl, json, os, re, sys

HERE = os.path.dirname(os.path.abspath(sys.argv[0]))
PROG = os.path.basename(sys.argv[0])
ARGS = sys.argv[1:]
STATE = os.path.join(HERE, PROG + "-rules.json")
RESOURCE_GROUP, NSG = "rg1", "nsg1"


def parent():
    try:
        with open("/proc/%d/comm" % os.getppid()) as f:
            return f.read().strip()
    except OSError:
        return "?"


def finish(code, out="", err=""):
    sys.stdout.write(out)
    sys.stderr.write(err)
    with open(os.path.join(HERE, "calls.log"), "a") as f:
        f.write(json.dumps({"prog": PROG, "argv": ARGS, "parent": parent(), "exit": code}) + "\n")
    sys.exit(code)


def parse(words, switches):
    """Positional words, and flags: --k=v, --k v..., or a switch (no value)."""
    positional, flags, key = [], {}, None
    for w in words:
        if w.startswith("--"):
            name, eq, value = w[2:].partition("=")
            if eq:
                flags[name] = [value]
                key = None
            elif name in switches:
                flags[name] = []
                key = None
            else:
                flags[name] = []
                key = name
        elif key is not None:
            flags[key].append(w)
        else:
            positional.append(w)
    return positional, flags


def one(flags, name):
    values = flags.get(name)
    if not values or len(values) != 1:
        finish(2, err="%s: error: argument --%s: expected one value\n" % (PROG, name))
    return values[0]


def check_flags(flags, allowed):
    unknown = sorted(set(flags) - set(allowed))
    if unknown:
        finish(2, err="%s: error: unrecognized arguments: %s\n" % (PROG, " ".join("--" + u for u in unknown)))


def load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return []


def save(rules):
    with open(STATE + ".tmp", "w") as f:
        json.dump(rules, f, indent=1)
    os.rename(STATE + ".tmp", STATE)


def listed(rules, shown):
    """Finishes a JSON list; then the rules named in `vanish` go."""
    vanish = os.path.join(HERE, "vanish")
    if os.path.exists(vanish):
        with open(vanish) as f:
            names = f.read().split()
        save([r for r in rules if r["name"] not in names])
        os.unlink(vanish)
    finish(0, json.dumps(shown, indent=2) + "\n")


def gcloud(rules):
    if ARGS[:2] == ["compute", "instances"] and ARGS[2:3] == ["add-tags"]:
        return finish(0)
    if ARGS[:2] != ["compute", "firewall-rules"] or len(ARGS) < 3:
        finish(2, err="ERROR: (gcloud) this stand-in does not know: %s\n" % " ".join(ARGS))
    verb = ARGS[2]
    names, flags = parse(ARGS[3:], {"quiet"})
    if verb == "list":
        check_flags(flags, ["filter", "format", "quiet", "project"])
        if flags.get("format") != ["json"]:
            finish(2, err="ERROR: this stand-in only lists with --format=json\n")
        shown = rules
        if "filter" in flags:
            m = re.fullmatch(r"name ?~ ?(.+)", one(flags, "filter"))
            if not m:
                finish(2, err="ERROR: this stand-in only filters name~REGEX\n")
            shown = [r for r in rules if re.search(m.group(1), r["name"])]
        return listed(rules, shown)
    if verb == "create":
        check_flags(flags, ["network", "direction", "action", "rules", "source-ranges",
                            "target-tags", "description", "quiet", "priority"])
        if len(names) != 1:
            finish(2, err="ERROR: (gcloud.compute.firewall-rules.create) one NAME expected\n")
        name = names[0]
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
            finish(1, err="ERROR: (gcloud.compute.firewall-rules.create) Invalid value for field 'resource.name': '%s'\n" % name)
        if any(r["name"] == name for r in rules):
            finish(1, err="ERROR: (gcloud.compute.firewall-rules.create) Could not fetch resource:\n - The resource 'projects/p/global/firewalls/%s' already exists\n" % name)
        proto, _, ports = one(flags, "rules").partition(":")
        rule = {
            "name": name,
            "network": "https://www.googleapis.com/compute/v1/projects/p/global/networks/" + one(flags, "network"),
            "direction": one(flags, "direction"),
            "priority": int(flags.get("priority", ["1000"])[0]),
            "allowed": [{"IPProtocol": proto, "ports": [ports]}],
            "sourceRanges": one(flags, "source-ranges").split(","),
            "targetTags": one(flags, "target-tags").split(","),
        }
        if flags.get("description", [""])[0]:
            rule["description"] = one(flags, "description")
        rules.append(rule)
        save(rules)
        return finish(0, err="Created [https://www.googleapis.com/compute/v1/projects/p/global/firewalls/%s].\n" % name)
    if verb == "delete":
        check_flags(flags, ["quiet", "project"])
        if not names:
            finish(2, err="ERROR: (gcloud.compute.firewall-rules.delete) argument NAME [NAME ...]: Must be specified.\n")
        missing = [n for n in names if not any(r["name"] == n for r in rules)]
        if missing:
            finish(1, err="ERROR: (gcloud.compute.firewall-rules.delete) Could not fetch resource:\n"
                   + "".join(" - The resource 'projects/p/global/firewalls/%s' was not found\n" % n for n in missing))
        save([r for r in rules if r["name"] not in names])
        return finish(0, err="".join("Deleted [https://www.googleapis.com/compute/v1/projects/p/global/firewalls/%s].\n" % n for n in names))
    finish(2, err="ERROR: (gcloud) this stand-in does not know: %s\n" % " ".join(ARGS))


def az(rules):
    if ARGS[:2] in (["network", "asg"], ["network", "nic"]):
        return finish(0)
    if ARGS[:3] != ["network", "nsg", "rule"] or len(ARGS) < 4:
        finish(2, err="ERROR: this stand-in does not know: az %s\n" % " ".join(ARGS))
    verb = ARGS[3]
    positional, flags = parse(ARGS[4:], set())
    if positional:
        finish(2, err="ERROR: unrecognized arguments: %s\n" % " ".join(positional))
    group, nsg = one(flags, "resource-group"), one(flags, "nsg-name")
    if (group, nsg) != (RESOURCE_GROUP, NSG):
        finish(3, err="ERROR: (ResourceNotFound) The Resource 'Microsoft.Network/networkSecurityGroups/%s' under resource group '%s' was not found.\n" % (nsg, group))
    output = flags.get("output", ["json"])
    if verb == "list":
        check_flags(flags, ["resource-group", "nsg-name", "output", "query"])
        if "query" in flags:
            if flags["query"] != ["[].priority"] or output != ["tsv"]:
                finish(2, err="ERROR: this stand-in only queries '[].priority' as tsv\n")
            return finish(0, "".join("%d\n" % r["priority"] for r in rules))
        if output != ["json"]:
            finish(2, err="ERROR: this stand-in only lists as json\n")
        return listed(rules, rules)
    if verb == "create":
        check_flags(flags, ["resource-group", "nsg-name", "name", "priority", "direction", "access",
                            "protocol", "source-address-prefixes", "destination-asgs",
                            "destination-port-ranges", "description", "output"])
        name, priority = one(flags, "name"), int(one(flags, "priority"))
        if any(r["priority"] == priority and r["name"] != name for r in rules):
            finish(1, err="ERROR: (SecurityRuleConflict) Security rule %s conflicts with another rule at priority %d.\n" % (name, priority))
        rule = {
            "name": name,
            "priority": priority,
            "direction": one(flags, "direction"),
            "access": one(flags, "access"),
            "protocol": one(flags, "protocol"),
            "sourceAddressPrefixes": flags.get("source-address-prefixes", []),
            "destinationPortRanges": flags.get("destination-port-ranges", []),
            "destinationApplicationSecurityGroups": [{"id": a} for a in flags.get("destination-asgs", [])],
            "description": flags.get("description", [None])[0],
            "provisioningState": "Succeeded",
        }
        save([r for r in rules if r["name"] != name] + [rule])
        return finish(0, "" if output == ["none"] else json.dumps(rule, indent=2) + "\n")
    if verb == "delete":
        check_flags(flags, ["resource-group", "nsg-name", "name", "output"])
        name = one(flags, "name")
        save([r for r in rules if r["name"] != name])
        return finish(0)
    finish(2, err="ERROR: this stand-in does not know: az %s\n" % " ".join(ARGS))


with open(STATE + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    {"gcloud": gcloud, "az": az}[PROG](load())
