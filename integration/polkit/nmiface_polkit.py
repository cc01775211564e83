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
uid 0 is always authorized. Every question is appended to the log file as one
line "UID ACTION FLAGS ANSWER" (ANSWER is the rule's answer, before flags).

Parameters (JSON, -p): {"rules": PATH, "log": PATH}.
'''

import fnmatch

import dbus

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
        if len(fields) != 3 or fields[2] not in ('yes', 'no', 'auth'):
            continue
        who, pattern, answer = fields
        if who in ('*', str(uid)) and fnmatch.fnmatchcase(action, pattern):
            return answer
    return 'no'


def subject_uid(obj, subject):
    '''The uid of a polkit subject: unix-process carries it (NM sends pid,
    start-time and uid); for system-bus-name ask the bus; -1 if unknown.'''
    kind, details = subject
    if 'uid' in details:
        return int(details['uid'])
    if kind == 'system-bus-name' and 'name' in details:
        return int(obj.connection.get_unix_user(str(details['name'])))
    return -1


@dbus.service.method(MAIN_IFACE, in_signature='(sa{sv})sa{ss}us', out_signature='(bba{ss})')
def CheckAuthorization(self, subject, action_id, _details, flags, _cancellation_id):
    uid = subject_uid(self, subject)
    answer = rule_answer(self.nmi_rules, uid, str(action_id))
    with open(self.nmi_log, 'a', encoding='utf-8') as f:
        f.write(f'{uid} {action_id} {int(flags)} {answer}\n')
    if answer == 'auth':
        if int(flags) & ALLOW_USER_INTERACTION:
            return (True, False, dbus.Dictionary({}, signature='ss'))
        return (False, True, dbus.Dictionary({}, signature='ss'))
    return (answer == 'yes', False, dbus.Dictionary({}, signature='ss'))


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='')
def CancelCheckAuthorization(_self, _cancellation_id):
    '''Every answer is immediate: nothing is ever pending to cancel.'''
