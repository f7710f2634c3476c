"""The category classifier: (domain, relativePath) -> one of Coffer's data categories (DESIGN.md section 2).

The mapping is the RULES table below, evaluated top to bottom, first match wins. A rule names a domain pattern
and a path pattern (fnmatch syntax, where `*` also matches `/`; a path pattern ending in `/**` matches that
directory itself and everything under it; `**` alone matches any path, the domain root included) and the source
the rule rests on. Sources: "§7.2" is shared/ios-protocol.md section 7.2 (✓ = path published by MVT, iOSbackup,
pymobiledevice3 or iphone_backup_decrypt; S = taken from a tool's source; ? = inferred); "fixture" means the path
was seen in the real iOS 14.3 Manifest.db of shared/fixtures and placed by what the owning app or daemon is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import translate
from functools import cache, lru_cache


class Category(StrEnum):
    PHOTOS = "photos"
    MESSAGES = "messages"
    NOTES = "notes"
    CONTACTS = "contacts"
    CALENDARS = "calendars"
    REMINDERS = "reminders"
    MAIL = "mail"
    CALL_HISTORY = "call_history"
    VOICEMAIL = "voicemail"
    VOICE_MEMOS = "voice_memos"
    HEALTH = "health"
    KEYCHAIN = "keychain"
    SAFARI = "safari"
    WALLET = "wallet"
    MAPS = "maps"
    SIRI_SHORTCUTS = "siri_shortcuts"
    SCREEN_TIME = "screen_time"
    KEYBOARD = "keyboard"
    HOME = "home"
    MEMOJI = "memoji"
    SETTINGS = "settings"
    APPS = "apps"
    OTHER = "other"


@dataclass(frozen=True)
class Rule:
    domain: str
    path: str
    category: Category
    source: str


# Containers of Apple's own apps: AppDomain-, AppDomainGroup- and AppDomainPlugin- (extensions) of a bundle.
_ANY_CONTAINER = "AppDomain*-"
_C = Category

RULES: tuple[Rule, ...] = (
    # --- Keychain first: Wi-Fi network lists and Bluetooth pairings must never fall into "settings".
    Rule("KeychainDomain", "**", _C.KEYCHAIN, "§7.2 ✓ keychain-backup.plist; §7.2 fallback KeychainDomain"),
    Rule(
        "*",
        "com.apple.wifi*",
        _C.KEYCHAIN,
        "§7.2 ✓ Wi-Fi known-networks plist; DESIGN.md §2 (networks -> keychain)",
    ),
    Rule(
        "*", "*/com.apple.wifi*", _C.KEYCHAIN, "§7.2 ✓ SystemConfiguration/com.apple.wifi.plist; DESIGN.md §2"
    ),
    Rule(
        "SysSharedContainerDomain-systemgroup.com.apple.bluetooth",
        "**",
        _C.KEYCHAIN,
        "§7.2 ✓ W1/H1 Bluetooth pairing databases (an Apple E2E category, kept with the network secrets)",
    ),
    # --- Photos
    Rule(
        "CameraRollDomain",
        "**",
        _C.PHOTOS,
        "§7.2 ✓ Media/PhotoData/Photos.sqlite, S DCIM; fallback CameraRollDomain",
    ),
    Rule("MediaDomain", "Media/DCIM/**", _C.PHOTOS, "§7.2 S iphone_backup_decrypt CAMERA_ROLL (DCIM)"),
    Rule("MediaDomain", "Media/PhotoData/**", _C.PHOTOS, "§7.2 ✓ PhotoData (Photos library)"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.mobileslideshow*",
        "**",
        _C.PHOTOS,
        "fixture: Photos app (mobileslideshow)",
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.Photo*", "**", _C.PHOTOS, "fixture: Photos services and extensions"),
    Rule(
        f"{_ANY_CONTAINER}group.com.apple.photo*",
        "**",
        _C.PHOTOS,
        "§7.2 fallback: Apple app group -> its app",
    ),
    # --- Messages
    Rule(
        "HomeDomain", "Library/SMS/**", _C.MESSAGES, "§7.2 ✓ MVT sms.py (sms.db); S pymobiledevice3 MESSAGES"
    ),
    Rule(
        "MediaDomain",
        "Library/SMS/**",
        _C.MESSAGES,
        "§7.2 S pymobiledevice3 MESSAGES; iphone_backup_decrypt SMS_ATTACHMENTS",
    ),
    Rule(
        "HomeDomain",
        "Library/MessagesMetaData/**",
        _C.MESSAGES,
        "fixture: iMessage name and photo sharing cache",
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.MobileSMS*", "**", _C.MESSAGES, "fixture: Messages app and extensions"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.icloud.apps.messages*",
        "**",
        _C.MESSAGES,
        "fixture: Messages for Business",
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.smsFilter*", "**", _C.MESSAGES, "fixture: SMS filter"),
    Rule(f"{_ANY_CONTAINER}com.apple.iMessageAppsViewService", "**", _C.MESSAGES, "fixture: iMessage apps"),
    # --- Notes
    Rule(
        "HomeDomain",
        "Library/Notes/**",
        _C.NOTES,
        "§7.2 ✓ Library/Notes/notes.sqlite (iphone_backup_decrypt NOTES)",
    ),
    Rule(
        f"{_ANY_CONTAINER}group.com.apple.notes*",
        "**",
        _C.NOTES,
        "§7.2 ✓ NoteStore.sqlite in group.com.apple.notes",
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.mobilenotes*", "**", _C.NOTES, "fixture: Notes app and extensions"),
    # --- Contacts
    Rule(
        "HomeDomain",
        "Library/AddressBook/**",
        _C.CONTACTS,
        "§7.2 ✓ MVT contacts.py, iOSbackup (AddressBook.sqlitedb)",
    ),
    Rule("HomeDomain", "Library/Recents/**", _C.CONTACTS, "fixture: CoreRecents (recently used addresses)"),
    Rule(f"{_ANY_CONTAINER}com.apple.MobileAddressBook*", "**", _C.CONTACTS, "fixture: Contacts app"),
    Rule(f"{_ANY_CONTAINER}com.apple.contacts*", "**", _C.CONTACTS, "fixture: Contacts extensions"),
    Rule(f"{_ANY_CONTAINER}com.apple.ContactsUI*", "**", _C.CONTACTS, "fixture: Contacts extensions"),
    # --- Calendars and reminders
    Rule("HomeDomain", "Library/Calendar/**", _C.CALENDARS, "§7.2 ✓ MVT calendar.py (Calendar.sqlitedb)"),
    Rule(f"{_ANY_CONTAINER}com.apple.mobilecal*", "**", _C.CALENDARS, "fixture: Calendar app and extensions"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.Calendar*",
        "**",
        _C.CALENDARS,
        "fixture: Calendar widget and notifications",
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.eventkitui*", "**", _C.CALENDARS, "fixture: EventKit UI extension"),
    Rule("HomeDomain", "Library/Reminders/**", _C.REMINDERS, "§7.2 ? iLEAPP Container_v1/Stores/*.sqlite"),
    Rule(
        f"{_ANY_CONTAINER}group.com.apple.reminders*",
        "**",
        _C.REMINDERS,
        "§7.2 fallback: Apple app group -> its app",
    ),
    Rule(
        f"{_ANY_CONTAINER}com.apple.reminder*", "**", _C.REMINDERS, "fixture: Reminders app and ReminderKit"
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.ReminderKit*", "**", _C.REMINDERS, "fixture: ReminderKit UI extension"),
    # --- Mail
    Rule("HomeDomain", "Library/Mail/**", _C.MAIL, "§7.2 ? Library/Mail (Envelope Index)"),
    Rule(f"{_ANY_CONTAINER}com.apple.mobilemail*", "**", _C.MAIL, "fixture: Mail app and extensions"),
    Rule(
        f"{_ANY_CONTAINER}group.com.apple.mail*", "**", _C.MAIL, "§7.2 fallback: Apple app group -> its app"
    ),
    Rule(
        f"{_ANY_CONTAINER}com.apple.Mail*",
        "**",
        _C.MAIL,
        "fixture: MailPersonaStorage, MailCompositionService",
    ),
    Rule(
        f"{_ANY_CONTAINER}com.apple.exchangesyncexpress*", "**", _C.MAIL, "fixture: Exchange sync extension"
    ),
    # --- Calls, voicemail, voice memos
    Rule(
        "HomeDomain",
        "Library/CallHistoryDB/**",
        _C.CALL_HISTORY,
        "§7.2 ✓ MVT calls.py (CallHistory.storedata)",
    ),
    Rule(
        "HomeDomain", "Library/CallHistoryTransactions/**", _C.CALL_HISTORY, "fixture: call history sync log"
    ),
    Rule("HomeDomain", "Library/CallHistory/**", _C.CALL_HISTORY, "§7.2 ✓ pre-iOS 8 call_history.db"),
    Rule(f"{_ANY_CONTAINER}com.apple.mobilephone*", "**", _C.CALL_HISTORY, "fixture: Phone app"),
    Rule(f"{_ANY_CONTAINER}com.apple.InCallService*", "**", _C.CALL_HISTORY, "fixture: in-call UI"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.facetime*",
        "**",
        _C.CALL_HISTORY,
        "fixture: FaceTime (calls are in CallHistory)",
    ),
    Rule(
        f"{_ANY_CONTAINER}com.apple.TelephonyUtilities*",
        "**",
        _C.CALL_HISTORY,
        "fixture: telephony extension",
    ),
    Rule(
        "HomeDomain",
        "Library/Voicemail/**",
        _C.VOICEMAIL,
        "§7.2 ✓ voicemail.db; S iphone_backup_decrypt VOICEMAILS",
    ),
    Rule("MediaDomain", "Media/Recordings/**", _C.VOICE_MEMOS, "§7.2 ✓ Media/Recordings/Recordings.db"),
    Rule(
        "HomeDomain", "Library/Recordings/**", _C.VOICE_MEMOS, "§7.2 S iphone_backup_decrypt VOICE_RECORDINGS"
    ),
    Rule(
        f"{_ANY_CONTAINER}group.com.apple.VoiceMemos*",
        "**",
        _C.VOICE_MEMOS,
        "§7.2 ? VoiceMemos.shared app group",
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.VoiceMemos*", "**", _C.VOICE_MEMOS, "fixture: Voice Memos app"),
    # --- Health
    Rule(
        "HealthDomain",
        "**",
        _C.HEALTH,
        "§7.2 S iphone_backup_decrypt HEALTH (healthdb.sqlite); fallback HealthDomain",
    ),
    Rule(
        "HomeDomain", "Library/Health/**", _C.HEALTH, "§7.1 HealthDomain lives at /var/mobile/Library/Health"
    ),
    Rule("HomeDomain", "Library/ExposureNotification/**", _C.HEALTH, "fixture: Exposure Notification data"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.Health*",
        "**",
        _C.HEALTH,
        "fixture: Health app, HealthKit, exposure notification",
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.SleepHealth*", "**", _C.HEALTH, "fixture: Sleep (Health) UI"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.SleepLockScreen", "**", _C.HEALTH, "fixture: Sleep (Health) lock screen"
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.PublicHealth*", "**", _C.HEALTH, "fixture: exposure notification UI"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.SeymourServices*", "**", _C.HEALTH, "fixture: Fitness (Seymour) services"
    ),
    # --- Safari
    Rule(
        "HomeDomain",
        "Library/Safari/**",
        _C.SAFARI,
        "§7.2 ✓ History.db, Bookmarks.db; S MVT safari_browserstate.py",
    ),
    Rule("HomeDomain", "Library/WebKit/**", _C.SAFARI, "fixture: website data (WebKit databases)"),
    Rule("HomeDomain", "Library/Cookies/**", _C.SAFARI, "fixture: HTTP cookies"),
    Rule("HomeDomain", "Library/WebClips/**", _C.SAFARI, "fixture: web pages added to the Home Screen"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.mobilesafari*",
        "**",
        _C.SAFARI,
        "§7.2 ✓ old Safari History.db in AppDomain",
    ),
    Rule(
        f"{_ANY_CONTAINER}group.com.apple.safari*",
        "**",
        _C.SAFARI,
        "§7.2 fallback: Apple app group -> its app",
    ),
    Rule(f"{_ANY_CONTAINER}com.apple.Safari*", "**", _C.SAFARI, "fixture: SafariViewService"),
    Rule(f"{_ANY_CONTAINER}com.apple.WebSheet", "**", _C.SAFARI, "fixture: captive-portal web sheet"),
    # --- Wallet
    Rule("HomeDomain", "Library/Passes/**", _C.WALLET, "§7.2 S iOSbackup (Passes/Cards); ? passes23.sqlite"),
    Rule(f"{_ANY_CONTAINER}com.apple.Passbook*", "**", _C.WALLET, "fixture: Wallet app (Passbook)"),
    Rule(f"{_ANY_CONTAINER}com.apple.PassKit*", "**", _C.WALLET, "fixture: PassKit extensions"),
    # --- Maps
    Rule(f"{_ANY_CONTAINER}group.com.apple.Maps*", "**", _C.MAPS, "§7.2 ? iLEAPP MapsSync_0.0.1"),
    Rule(f"{_ANY_CONTAINER}com.apple.Maps*", "**", _C.MAPS, "§7.2 ? Library/Maps/GeoHistory.mapsdata"),
    Rule("HomeDomain", "Library/Maps/**", _C.MAPS, "§7.2 ? iLEAPP Maps history"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.findmy*", "**", _C.MAPS, "fixture: Find My (people and device locations)"
    ),
    Rule(f"{_ANY_CONTAINER}group.com.apple.icloud.fm*", "**", _C.MAPS, "fixture: Find My app group"),
    # --- Siri and Shortcuts
    Rule(
        "HomeDomain", "Library/Shortcuts/**", _C.SIRI_SHORTCUTS, "§7.2 ✓ MVT shortcuts.py (Shortcuts.sqlite)"
    ),
    Rule("HomeDomain", "Library/Assistant/**", _C.SIRI_SHORTCUTS, "§7.2 ? Siri information"),
    Rule("HomeDomain", "Library/com.apple.siri*/**", _C.SIRI_SHORTCUTS, "§7.2 ? iLEAPP siri.inference"),
    Rule("HomeDomain", "Library/VoiceTrigger/**", _C.SIRI_SHORTCUTS, "fixture: 'Hey Siri' voice profile"),
    Rule(f"{_ANY_CONTAINER}com.apple.shortcuts*", "**", _C.SIRI_SHORTCUTS, "fixture: Shortcuts app"),
    Rule(f"{_ANY_CONTAINER}com.apple.Workflow*", "**", _C.SIRI_SHORTCUTS, "fixture: Shortcuts (WorkflowKit)"),
    Rule(f"{_ANY_CONTAINER}com.apple.ActionKit*", "**", _C.SIRI_SHORTCUTS, "fixture: Shortcuts actions"),
    Rule(f"{_ANY_CONTAINER}com.apple.siri*", "**", _C.SIRI_SHORTCUTS, "fixture: Siri app and extensions"),
    Rule(f"{_ANY_CONTAINER}com.apple.AssistantServices*", "**", _C.SIRI_SHORTCUTS, "fixture: Siri services"),
    # --- Screen Time
    Rule(
        "HomeDomain",
        "Library/Application Support/com.apple.remotemanagementd/**",
        _C.SCREEN_TIME,
        "§7.2 ? RMAdminStore-*.sqlite",
    ),
    Rule(
        f"{_ANY_CONTAINER}com.apple.ScreenTime*", "**", _C.SCREEN_TIME, "fixture: Screen Time UI and widget"
    ),
    Rule(
        f"{_ANY_CONTAINER}com.apple.RemoteManagement*",
        "**",
        _C.SCREEN_TIME,
        "fixture: Screen Time (remotemanagementd)",
    ),
    # --- Keyboard, Home, Memoji
    Rule("KeyboardDomain", "**", _C.KEYBOARD, "§7.2 fallback KeyboardDomain (user_model_database.sqlite)"),
    Rule("HomeDomain", "Library/Keyboard/**", _C.KEYBOARD, "§7.2 ? QuickType vocabulary"),
    Rule("HomeKitDomain", "**", _C.HOME, "§7.2 ? Library/homed; fallback HomeKitDomain"),
    Rule(f"{_ANY_CONTAINER}com.apple.Home*", "**", _C.HOME, "fixture: Home app, HomeKit extensions"),
    Rule(f"{_ANY_CONTAINER}com.apple.HomeKit*", "**", _C.HOME, "fixture: HomeKit extensions"),
    Rule("HomeDomain", "Library/Avatar/**", _C.MEMOJI, "§7.2 ? Library/Avatar"),
    Rule(f"{_ANY_CONTAINER}com.apple.Animoji*", "**", _C.MEMOJI, "fixture: Animoji / Memoji stickers"),
    Rule(
        f"{_ANY_CONTAINER}com.apple.FunCamera*", "**", _C.MEMOJI, "fixture: Memoji / camera effects stickers"
    ),
    # --- Settings: preferences and system state of the user's home
    Rule("HomeDomain", "Library/Preferences/**", _C.SETTINGS, "§7.2 ✓ MVT .GlobalPreferences.plist"),
    Rule(
        "HomeDomain",
        "Library/SpringBoard/**",
        _C.SETTINGS,
        "§7.2 ✓ iOSbackup wallpaper; fixture Home Screen layout",
    ),
    Rule("HomeDomain", "Library/TCC/**", _C.SETTINGS, "§7.2 ✓ MVT tcc.py (privacy permissions)"),
    Rule("HomeDomain", "Library/Accounts/**", _C.SETTINGS, "§7.2 ? iLEAPP Accounts3.sqlite"),
    Rule("HomeDomain", "Library/DataAccess/**", _C.SETTINGS, "fixture: Exchange/CalDAV account settings"),
    Rule("HomeDomain", "Library/UserConfigurationProfiles/**", _C.SETTINGS, "fixture: installed profiles"),
    Rule(
        "HomeDomain", "Library/ConfigurationProfiles/**", _C.SETTINGS, "§7.2 S MVT configuration_profiles.py"
    ),
    Rule("HomeDomain", "Library/Accessibility/**", _C.SETTINGS, "fixture: accessibility settings"),
    Rule("HomeDomain", "Library/ControlCenter/**", _C.SETTINGS, "fixture: Control Centre layout"),
    Rule("HomeDomain", "Library/DoNotDisturb/**", _C.SETTINGS, "fixture: Do Not Disturb settings"),
    Rule("HomeDomain", "Library/BulletinBoard/**", _C.SETTINGS, "fixture: notification settings"),
    Rule("HomeDomain", "Library/UserNotifications/**", _C.SETTINGS, "fixture: per-app notification state"),
    Rule("HomeDomain", "Library/FrontBoard/**", _C.SETTINGS, "fixture: application state"),
    Rule(
        "HomeDomain", "Library/DeviceRegistry.state/**", _C.SETTINGS, "fixture: paired Apple Watch registry"
    ),
    Rule("HomeDomain", "Library/MobileBluetooth/**", _C.SETTINGS, "fixture: Bluetooth settings"),
    Rule("HomeDomain", "Library/MobileInstallation/**", _C.SETTINGS, "fixture: app install state"),
    Rule("HomeDomain", "Library/Spotlight/**", _C.SETTINGS, "fixture: Spotlight settings"),
    Rule(
        "HomeDomain", "Library/Application Support/**", _C.SETTINGS, "fixture: system services' support files"
    ),
    Rule("HomeDomain", "Library/CoreDuet/**", _C.SETTINGS, "§7.2 ✓ interactionC.db (on-device usage state)"),
    Rule("HomeDomain", "Library/DuetExpertCenter/**", _C.SETTINGS, "fixture: on-device suggestions state"),
    Rule(
        "HomeDomain",
        "Library/PersonalizationPortrait/**",
        _C.SETTINGS,
        "fixture: on-device personalisation state",
    ),
    Rule("HomeDomain", "Library/com.apple.internal.ck/**", _C.SETTINGS, "fixture: CloudKit sync state"),
    Rule("HomeDomain", "Library/com.apple.itunesstored/**", _C.SETTINGS, "fixture: App/iTunes Store state"),
    Rule("HomeDomain", "Library/MusicLibrary/**", _C.SETTINGS, "fixture: music library state"),
    # --- iCloud Drive local copies and Files: document containers of apps
    Rule(
        "HomeDomain",
        "Library/Mobile Documents/**",
        _C.APPS,
        "§7.2 S iphone_backup_decrypt ICLOUD_LOCAL_FILES",
    ),
    # --- System domains: settings (section 7.2 classification fallbacks)
    Rule("SystemPreferencesDomain", "**", _C.SETTINGS, "§7.2 fallback: system / settings"),
    Rule("ManagedPreferencesDomain", "**", _C.SETTINGS, "§7.2 fallback: system / settings"),
    Rule("SysContainerDomain-*", "**", _C.SETTINGS, "§7.2 fallback: system / settings"),
    Rule("SysSharedContainerDomain-*", "**", _C.SETTINGS, "§7.2 fallback: system / settings"),
    Rule(
        "RootDomain", "**", _C.SETTINGS, "§7.2 fallback: system / settings (locationd, daemons' preferences)"
    ),
    Rule("DatabaseDomain", "**", _C.SETTINGS, "§7.2 fallback: system / settings"),
    Rule("InstallDomain", "**", _C.SETTINGS, "§7.2 fallback: system / settings"),
    Rule("MobileDeviceDomain", "**", _C.SETTINGS, "§7.2 fallback: system / settings (provisioning profiles)"),
    Rule("WirelessDomain", "**", _C.SETTINGS, "§7.2 fallback: system / settings (cellular usage)"),
    Rule("TonesDomain", "**", _C.SETTINGS, "fixture: ringtones and alert tones"),
    # --- Every other app container: third-party and remaining Apple apps (the bundle id is the sub-tag)
    Rule("AppDomain-*", "**", _C.APPS, "§7.2 fallback: AppDomain-<bundle> -> app data"),
    Rule("AppDomainGroup-*", "**", _C.APPS, "§7.2 fallback: app group"),
    Rule("AppDomainPlugin-*", "**", _C.APPS, "§7.2 fallback: AppDomainPlugin-* -> app extension"),
    Rule("BooksDomain", "**", _C.APPS, "§7.1 BooksDomain (Books app content)"),
)

_APP_PREFIXES = ("AppDomain-", "AppDomainGroup-", "AppDomainPlugin-")


def classify(domain: str, relative_path: str) -> Category:
    """The category of a Manifest.db row; OTHER when no rule matches."""
    rule = matching_rule(domain, relative_path)
    return Category.OTHER if rule is None else rule.category


def matching_rule(domain: str, relative_path: str) -> Rule | None:
    """The first rule matching a row (it decides the category and names its source), or None."""
    for path_pattern, rule in _rules_for_domain(domain):
        if path_pattern.fullmatch(relative_path):
            return rule
    return None


def app_bundle_id(domain: str) -> str | None:
    """The app sub-tag: the bundle or group id of an AppDomain-, AppDomainGroup- or AppDomainPlugin- domain."""
    for prefix in _APP_PREFIXES:
        if domain.startswith(prefix) and len(domain) > len(prefix):
            return domain[len(prefix) :]
    return None


@lru_cache(maxsize=4096)
def _rules_for_domain(domain: str) -> tuple[tuple[re.Pattern[str], Rule], ...]:
    # A backup has a few hundred domains and up to hundreds of thousands of rows: filter the table per domain once.
    return tuple(
        (_compile_path(rule.path), rule) for rule in RULES if _compile_domain(rule.domain).fullmatch(domain)
    )


@cache
def _compile_domain(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern), re.DOTALL)


@cache
def _compile_path(pattern: str) -> re.Pattern[str]:
    if pattern == "**":
        return re.compile(".*", re.DOTALL)
    if pattern.endswith("/**"):
        base = pattern[:-3]
        return re.compile(f"(?:{translate(base)})|(?:{translate(base + '/*')})", re.DOTALL)
    return re.compile(translate(pattern), re.DOTALL)
