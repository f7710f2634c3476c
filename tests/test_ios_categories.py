"""The category classifier against the file list of a real iOS 14.3 backup (shared/fixtures)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from agent.ios.categories import RULES, Category, app_bundle_id, classify, matching_rule

FIXTURE = Path("/work/shared/fixtures/ios14-real-manifest.tsv")
DESIGN_NAMES = [
    "photos",
    "messages",
    "notes",
    "contacts",
    "calendars",
    "reminders",
    "mail",
    "call_history",
    "voicemail",
    "voice_memos",
    "health",
    "keychain",
    "safari",
    "wallet",
    "maps",
    "siri_shortcuts",
    "screen_time",
    "keyboard",
    "home",
    "memoji",
    "settings",
    "apps",
    "other",
]
MAX_OTHER_SHARE = 0.01

# Well-known user-data rows of ios-protocol.md section 7.2 present in the fixture, by fileID.
EXPECTED = {
    Category.MESSAGES: [
        "3d0d7e5fb2ce288813306e4d4636395e047a3d28",  # HomeDomain Library/SMS/sms.db
        "003f52579f0ae40aaee7f066aae75505a9d7e002",  # MediaDomain Library/SMS (attachments folder)
    ],
    Category.PHOTOS: [
        "12b144c0bd44f2b3dffd9186d3f9c05b917cee25",  # CameraRollDomain Media/PhotoData/Photos.sqlite
        "c8ada38b9acf7368c6647be1c353dc68ed2c7741",  # CameraRollDomain Media/DCIM/100APPLE/IMG_0001.PNG
    ],
    Category.NOTES: [
        "4f98687d8ab0d6d1a371110e6b7300f6e465bef2",  # group.com.apple.notes NoteStore.sqlite
        "ca3bc056d4da0bbf88b5fb3be254f3b7147e639c",  # HomeDomain Library/Notes/notes.sqlite
    ],
    Category.CONTACTS: [
        "31bb7ba8914766d4ba40d6dfb6113c8b614be442",  # AddressBook.sqlitedb
        "cd6702cea29fe89cf280a76794405adb17f9a0ee",  # AddressBookImages.sqlitedb
    ],
    Category.CALENDARS: ["2041457d5fe04d39d0ab481178355df6781e6858"],  # Calendar.sqlitedb
    Category.REMINDERS: [
        "cd0f54a864abf424e47de7b8910e9bdf44dfc6ea"
    ],  # Reminders Container_v1/Stores/Data-local
    Category.MAIL: ["9802190470433939aa5910b528f396753e4cb262"],  # Library/Mail/MailboxCollections.plist
    Category.CALL_HISTORY: [
        "5a4935c78a5255723f707230a451d79c540d2741",  # CallHistoryDB/CallHistory.storedata
        "de447ab69b7efce4b44e4636f8bbd48a2fb97882",  # CallHistoryTransactions/transactions.log
    ],
    Category.VOICEMAIL: ["992df473bbb9e132f4b3b6e4d33f72171e97bc7a"],  # Library/Voicemail/voicemail.db
    Category.VOICE_MEMOS: [
        "303e04f2a5b473c5ca2127d65365db4c3e055c05"
    ],  # MediaDomain Media/Recordings/Recordings.db
    Category.HEALTH: [
        "fa2e5ac3b7a62c8b7cb21e440c79eedd218550ea",  # Health/healthdb.sqlite
        "516d7e19a4a0c9475c0015fae195626377b1b810",  # Health/healthdb_secure.sqlite
    ],
    Category.KEYCHAIN: [
        "51a4616e576dd33cd2abadfea874eb8ff246bf0e",  # keychain-backup.plist
        "ade0340f576ee14793c607073bd7e8e409af07a8",  # SystemConfiguration/com.apple.wifi.plist
        "0fa75546343ba224c9fe55adc73e8fdedc1029c3",  # com.apple.wifi.known-networks.plist
        "e36b35ae4cc6038f9ce83b5e097f216144278b17",  # SystemConfiguration/com.apple.wifi-private-mac-networks.plist
        "7548e0cb507ab2e3084e352f76cc6b2065d77b15",  # SystemConfiguration/com.apple.wifi-networks.plist
        "60676dc938a4213796caffcb1b488a4ab84a1cc9",  # Bluetooth ledevices.paired.db
    ],
    Category.SAFARI: [
        "1a0e7afc19d307da602ccdcece51af33afe92c53",  # Library/Safari/History.db
        "d1f062e2da26192a6625d968274bfda8d07821e4",  # Library/Safari/Bookmarks.db
    ],
    Category.WALLET: ["f2db58944fd200c4cd632ca46f3e2d484ec39cdb"],  # Library/Passes/Cards
    Category.MAPS: ["181c97b0ca7212a1a2910ab5e954686a9062c3b3"],  # group.com.apple.Maps Maps/MapsSync_0.0.1
    Category.SIRI_SHORTCUTS: [
        "5b4d0b44b5990f62b9f4d34ad8dc382bf0b01094"
    ],  # Library/Shortcuts/Shortcuts.sqlite
    Category.SCREEN_TIME: [
        "d90abecbb7e24845ea1b9df229370652c067b797"
    ],  # AppDomain-com.apple.ScreenTimeUnlock
    Category.KEYBOARD: [
        "6a4da7e4783929702498d8857ac4e810504160ba"
    ],  # KeyboardDomain user_model_database.sqlite
    Category.HOME: [
        "e2de31866e030d913242400a88f3293d4d740d28"
    ],  # HomeKitDomain Library/homed/datastore3.sqlite
    Category.MEMOJI: [
        "9aba54b7bd7f7d2586eedcc8e7ab266cab47871b"
    ],  # Library/Avatar/CoreDataBackend/avatars.db
    Category.SETTINGS: [
        "0dc926a1810f7aee4e8f38793ed788701f93bf9d",  # Library/Preferences/.GlobalPreferences.plist
        "64d0019cb3d46bfc8cce545a8ba54b93e7ea9347",  # Library/TCC/TCC.db
        "0d609c54856a9bb2d56729df1d68f2958a88426b",  # WirelessDomain DataUsage.sqlite
        "4096c9ec676f2847dc283405900e284a7c815836",  # RootDomain locationd consolidated.db
    ],
    Category.APPS: [
        "7c7fba66680ef796b916b067077cc246adacf01d",  # group.net.whatsapp.WhatsApp.shared ChatStorage.sqlite
        "0c46fc243e5c9b06be7af4d21accb6cf3ef09f95",  # AppDomain-net.whatsapp.WhatsApp Documents/StatusMessages.plist
    ],
}


@pytest.fixture(scope="module")
def rows() -> dict[str, tuple[str, str]]:
    with FIXTURE.open(newline="") as handle:
        return {
            row["fileID"]: (row["domain"], row["relativePath"])
            for row in csv.DictReader(handle, delimiter="\t")
        }


def test_category_values_are_the_design_names() -> None:
    assert [category.value for category in Category] == DESIGN_NAMES
    assert Category.PHOTOS == "photos" and Category("call_history") is Category.CALL_HISTORY


@pytest.mark.parametrize("category", list(EXPECTED), ids=lambda c: c.value)
def test_well_known_paths_land_in_their_category(
    rows: dict[str, tuple[str, str]], category: Category
) -> None:
    for file_id in EXPECTED[category]:
        assert file_id in rows, f"{file_id} is not in the fixture"
        domain, path = rows[file_id]
        assert classify(domain, path) is category, (domain, path, matching_rule(domain, path))


def test_other_is_small_and_holds_no_user_data(rows: dict[str, tuple[str, str]]) -> None:
    totals = Counter(classify(domain, path) for domain, path in rows.values())
    other = [(domain, path) for domain, path in rows.values() if classify(domain, path) is Category.OTHER]
    share = len(other) / len(rows)
    print(f"\n{len(rows)} entries; per category: { {c.value: n for c, n in totals.most_common()} }")
    print(
        f"other: {len(other)} entries ({share:.2%}) from domains {dict(Counter(domain for domain, _ in other))}"
    )
    for domain, path in other:
        print(f"  other: {domain} {path!r}")
    assert share <= MAX_OTHER_SHARE
    # What is left are domain roots and bare container folders, never a file.
    assert all(path in ("", "Documents", "Library", "Media", "Media/iTunes_Control") for _, path in other)


def test_every_fixture_domain_is_covered_by_a_domain_rule(rows: dict[str, tuple[str, str]]) -> None:
    unknown_domains = {domain for domain, _ in rows.values() if matching_rule(domain, "Library/x/y") is None}
    assert unknown_domains <= {"HomeDomain", "MediaDomain"}


def test_first_match_wins_and_rules_name_their_source() -> None:
    assert all(rule.source for rule in RULES)
    # HomeDomain Library/Preferences is settings, but a Wi-Fi plist there is keychain: the earlier rule wins.
    assert classify("HomeDomain", "Library/Preferences/com.apple.Maps.plist") is Category.SETTINGS
    assert classify("HomeDomain", "Library/Preferences/com.apple.wifi.plist") is Category.KEYCHAIN
    assert (
        matching_rule("HomeDomain", "Library/Preferences/com.apple.wifi.plist").category is Category.KEYCHAIN
    )


@pytest.mark.parametrize(
    ("domain", "path", "category"),
    [
        ("AppDomain-com.apple.mobilesafari", "Library/Safari/History.db", Category.SAFARI),
        ("AppDomainPlugin-com.apple.mobilenotes.SharingExtension", "", Category.NOTES),
        ("AppDomain-com.apple.Maps", "Library/Maps/GeoHistory.mapsdata", Category.MAPS),
        ("AppDomain-com.apple.stocks", "Library", Category.APPS),  # an Apple app without its own category
        ("AppDomain-com.example.game", "Documents/save.dat", Category.APPS),
        ("HomeDomain", "Library/Passes/Cards/abc.pkpass/pass.json", Category.WALLET),
        ("HomeDomain", "Library/Keyboard/en-dynamic.lm/dynamic-lexicon.dat", Category.KEYBOARD),
        (
            "HomeDomain",
            "Library/Application Support/com.apple.remotemanagementd/RMAdminStore-Local.sqlite",
            Category.SCREEN_TIME,
        ),
        ("HomeDomain", "Library/SMSX/not-messages", Category.OTHER),  # a prefix is not a directory match
        ("MediaDomain", "Library/SMS/Attachments/ab/01/IMG_1.HEIC", Category.MESSAGES),
        ("SysContainerDomain-com.apple.geod", "Library/Caches", Category.SETTINGS),
    ],
)
def test_synthetic_rows(domain: str, path: str, category: Category) -> None:
    assert classify(domain, path) is category


def test_app_bundle_id() -> None:
    assert app_bundle_id("AppDomain-net.whatsapp.WhatsApp") == "net.whatsapp.WhatsApp"
    assert (
        app_bundle_id("AppDomainGroup-group.net.whatsapp.WhatsApp.shared")
        == "group.net.whatsapp.WhatsApp.shared"
    )
    assert (
        app_bundle_id("AppDomainPlugin-com.apple.mobilenotes.SharingExtension")
        == "com.apple.mobilenotes.SharingExtension"
    )
    assert app_bundle_id("HomeDomain") is None
    assert app_bundle_id("AppDomain-") is None
