"""Sign names across recordings: one sign, one name, however each recording spells its folder.

Two folder names are the same sign when they are equal after Unicode NFC (macOS writes `Café` as
NFD, Linux as NFC: the same letters), case folding (`str.casefold`) and dropping what is not a letter
or digit (spaces, underscores, hyphens), or when --alias says so, directly or through a chain
(`--alias thanks=ty,ty=Thank_You` makes all three one sign).
"""

import collections
import unicodedata


def name_key(name):
    """Thank_You, thank you, THANK-YOU -> 'thankyou': how sign names are matched across recordings."""
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFC", str(name)).casefold())
    # Letters, digits and combining marks (the vowel signs of Devanagari or Thai: कम and काम are two signs).
    return "".join(character for character in text if character.isalnum() or unicodedata.category(character)[0] == "M")


def alias_classes(aliases=()):
    """{name key: the smallest key of its class}: aliases joined into classes, chains followed."""
    parent = {}

    def root(key):
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for left, right in aliases:
        a, b = sorted((root(name_key(left)), root(name_key(right))))
        parent[b] = a
    return {key: root(key) for key in list(parent)}


def _class_key(name, classes):
    key = name_key(name)
    return classes.get(key, key)


def match_actions(model_actions, data_actions, aliases=()):
    """{data folder: model action} for the folders that name one of the model's signs.

    Names match after NFC, case folding and dropping spaces, underscores and hyphens; aliases
    ("thanks", "thank_you") declare two names the same sign, in either direction, chains followed.
    """
    classes = alias_classes(aliases)
    by_key = {}
    for action in model_actions:
        other = by_key.setdefault(_class_key(action, classes), action)
        if other != action:
            raise ValueError(f"--alias makes {other!r} and {action!r} one sign, and both are signs of the model; "
                             f"an alias joins two spellings of one sign: drop it")
    matched = {}
    for folder in data_actions:
        action = by_key.get(_class_key(folder, classes))
        if action is not None:
            if action in matched.values():
                other = next(f for f, a in matched.items() if a == action)
                raise ValueError(f"folders {other!r} and {folder!r} both match the sign {action!r}; "
                                 f"leave one out of the folder or rename it")
            matched[folder] = action
    return matched


def same_sign_folders(folders):
    """[[folder, folder, ...]] of folders one recording holds that name one sign (Thank_You, thank you)."""
    groups = {}
    for folder in folders:
        groups.setdefault(name_key(folder), []).append(folder)
    return [group for group in groups.values() if len(group) > 1]


def unmatched_aliases(aliases, model_actions, folders):
    """[(left, right, [its names that match nothing])] of the --alias pairs that join no sign of the
    model to a folder. A name in two pairs is a link of a chain, not a typo."""
    classes = alias_classes(aliases)
    known = {name_key(name) for name in list(model_actions) + list(folders)}
    uses = collections.Counter(name_key(name) for pair in aliases for name in pair)
    signs = {_class_key(name, classes) for name in model_actions}
    found = {_class_key(name, classes) for name in folders}
    out = []
    for left, right in aliases:
        dangling = [name for name in (left, right) if name_key(name) not in known and uses[name_key(name)] < 2]
        if dangling or _class_key(left, classes) not in signs or _class_key(left, classes) not in found:
            out.append((left, right, dangling or [left, right]))
    return out


def parse_aliases(text):
    """'thanks=thank_you,iloveyou=I_Love_You' -> [['thanks', 'thank_you'], ...]."""
    pairs = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        if item.count("=") != 1 or not all(side.strip() for side in item.split("=")):
            raise ValueError(f"--alias takes name=name pairs separated by commas, e.g. --alias thanks=thank_you; "
                             f"got {item!r}")
        left, right = item.split("=")
        pairs.append([left.strip(), right.strip()])
    return pairs
