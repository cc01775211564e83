'''A polkit authority for nm-sandbox.sh --users: a python-dbusmock template.

NetworkManager 1.42 (src/core/nm-auth-manager.c) only looks up the owner of
org.freedesktop.PolicyKit1, listens for the Authority's "Changed" signal, and
calls CheckAuthorization (CancelCheckAuthorization when it drops a pending
request). Nothing else: no properties, no agent registration.

Answers come from a rules file re-read on every call, so a test can change
them while this runs. One rule a line, first match wins, default "no":

    UID ACTION ANSWER        e.g.  1001 org.freedesktop.NetworkManager.* yes

UID is a number or "*", ACTION an fnmatch pattern, ANSWER one of
  yes   authorized
  no    not authorized
  auth  not authorized but a challenge (polkit's auth_self/auth_admin); if the
        caller set flag 1 (AllowUserInteraction), authorized instead: that
        stands in for an authentication agent that got the password.
An ANSWER may end in "@SECONDS" (yes@2): that answer, given SECONDS later
(at most 30), as a polkit that takes its time (an authentication agent the
user is slow to answer); other questions are answered meanwhile.
uid 0 is always authorized. Every question is appended to the log file as one
line "UID ACTION FLAGS ANSWER" (ANSWER is the rule's answer, before flags).

Parameters (JSON, -p): {"rules": PATH, "log": PATH}.
'''

import fnmatch

import dbus
from gi.repository import GLib

BUS_NAME = 'org.freedesktop.PolicyKit1'
MAIN_OBJ = '/org/freedesktop/PolicyKit1/Authority'
MAIN_IFACE = 'org.freedesktop.PolicyKit1.Authority'
SYSTEM_BUS = True

ALLOW_USER_INTERACTION = 1


def load(mock, parameters):
    mock.nmi_rules = parameters['rules']
    mock.nmi_log = parameters['log']
    mock.AddProperties(MAIN_IFACE, dbus.Dictionary({
        'BackendName': 'nmiface-sandbox',
        'BackendVersion': '0',
        'BackendFeatures': dbus.UInt32(0),
    }, signature='sv'))


def rule_answer(rules_path, uid, action):
    '''The first matching rule's answer, "no" if none matches.'''
    if uid == 0:
        return 'yes'
    try:
        with open(rules_path, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        fields = line.split('#', 1)[0].split()
        if len(fields) != 3 or split_answer(fields[2]) is None:
            continue
        who, pattern, answer = fields
        if who in ('*', str(uid)) and fnmatch.fnmatchcase(action, pattern):
            return answer
    return 'no'


def split_answer(answer):
    '''(answer, delay in seconds) of "yes", "no", "auth", optionally "@SECONDS"; None if bad.'''
    word, _, delay = answer.partition('@')
    if word not in ('yes', 'no', 'auth'):
        return None
    try:
        seconds = float(delay) if delay else 0.0
    except ValueError:
        return None
    return (word, seconds) if 0 <= seconds <= 30 else None


def subject_uid(obj, subject):
    '''The uid of a polkit subject: unix-process carries it (NM sends pid,
    start-time and uid); for system-bus-name ask the bus; -1 if unknown.'''
    kind, details = subject
    if 'uid' in details:
        return int(details['uid'])
    if kind == 'system-bus-name' and 'name' in details:
        return int(obj.connection.get_unix_user(str(details['name'])))
    return -1


@dbus.service.method(MAIN_IFACE, in_signature='(sa{sv})sa{ss}us', out_signature='(bba{ss})',
                     async_callbacks=('reply', 'error'))
def CheckAuthorization(self, subject, action_id, _details, flags, _cancellation_id, reply, error):
    uid = subject_uid(self, subject)
    rule = rule_answer(self.nmi_rules, uid, str(action_id))
    answer, delay = split_answer(rule)
    with open(self.nmi_log, 'a', encoding='utf-8') as f:
        f.write(f'{uid} {action_id} {int(flags)} {rule}\n')
    if answer == 'auth':
        granted = bool(int(flags) & ALLOW_USER_INTERACTION)
        result = (granted, not granted, dbus.Dictionary({}, signature='ss'))
    else:
        result = (answer == 'yes', False, dbus.Dictionary({}, signature='ss'))
    if delay <= 0:
        reply(result)
        return

    def later():
        reply(result)
        return False
    GLib.timeout_add(int(delay * 1000), later)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def CancelCheckAuthorization(_self, _cancellation_id):
    '''Every answer is immediate: nothing is ever pending to cancel.'''
