"""Prints a doors transaction with 2,997 more doors than the one given: 999 more users'
previous, current and next windows, random pairs, as elements of the same table (the rules
of a knock-totp table do not change with its doors).

    python3 benches/many_doors.py DOORS.nft >DOORS-1000-USERS.nft
"""
import random
import re
import sys

text = open(sys.argv[1]).read()
table = re.search(r"add element inet (\S+) pairs", text).group(1)
grant = re.search(r"add chain inet \S+ (grant_\d+)", text).group(1)
rng = random.Random(1000)
starts, pairs, grants = set(), [], []
# A pair is one door (the daemon renders two holders' doors with one pair once).
taken = {(int(a), int(b)) for a, b in re.findall(r"(\d+) \. (\d+) timeout", text)}
for slot in range(2, 1001):
    for counter in range(3):
        a, b = rng.sample(range(1000, 10000), 2)
        while (a, b) in taken:
            a, b = rng.sample(range(1000, 10000), 2)
        taken.add((a, b))
        door = (counter << 12) | slot
        starts.add(a)
        pairs.append(f"{a} . {b} timeout 3600s : {door}")
        grants.append(f"{door} : goto {grant}")
print(text, end="")
print(f"add element inet {table} starts {{ {', '.join(f'{a} timeout 3600s' for a in sorted(starts))} }}")
print(f"add element inet {table} pairs {{ {', '.join(pairs)} }}")
print(f"add element inet {table} door_grant {{ {', '.join(grants)} }}")
