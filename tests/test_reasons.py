"""The reasons classifier: real provider replies and the reason each gives,
precedence, user rules and every error a bad rule gets."""

from __future__ import annotations

import random
import re

import pytest

from exporter.configcheck import Checker, ConfigError
from exporter.reasons import REASONS, ReasonRules
from exporter.replies import split_reply

# Replies as MTAs log them, in the shapes real servers send: flattened
# multi-line replies keep their continuation prefixes, as Postfix logs them.
REAL_REPLIES = [
    # Gmail
    ("gmail 5.7.26 unauthenticated",
     "550-5.7.26 This mail is unauthenticated, which poses a security risk to the 550-5.7.26 sender and "
     "Gmail users, and has been blocked. The sender must 550-5.7.26 authenticate with at least one of SPF "
     "or DKIM. For this message, 550-5.7.26 DKIM checks did not pass and SPF check for [example.com] did "
     "not 550-5.7.26 pass with ip: [192.0.2.10]. To best protect our users from spam, the 550-5.7.26 "
     "message has been blocked. Please visit 550-5.7.26 https://support.google.com/mail/answer/81126#"
     "authentication for more 550 5.7.26 information. a640c23a62f3a-a9a2b2b0c1esi1234567.123 - gsmtp",
     "sender_auth"),
    ("gmail 5.7.26 DMARC",
     "550-5.7.26 Unauthenticated email from example.com is not accepted due to 550-5.7.26 domain's DMARC "
     "policy. Please contact the administrator of example.com 550-5.7.26 domain if this was a legitimate "
     "mail. To learn about the DMARC 550-5.7.26 initiative, go to 550 5.7.26 "
     "https://support.google.com/mail/?p=DmarcRejection d2e1a72fcca58si8765432.45 - gsmtp",
     "sender_auth"),
    ("gmail 4.7.28 rate, DKIM domain",
     "421-4.7.28 [192.0.2.10      15] Our system has detected an unusual rate of 421-4.7.28 unsolicited "
     "mail originating from your DKIM domain [example.com      15]. 421-4.7.28 To protect our users from "
     "spam, mail sent from your DKIM domain has 421-4.7.28 been temporarily rate limited. Please visit "
     "421-4.7.28 https://support.google.com/mail/?p=UnsolicitedRateLimitError to 421 4.7.28 review our "
     "Bulk Email Senders Guidelines. 98e67ed59e1d1-2e2a5c1b2c3si1234567a12.345 - gsmtp",
     "rate_limited"),
    ("gmail 4.7.0 rate",
     "421-4.7.0 [192.0.2.10      15] Our system has detected an unusual rate of 421-4.7.0 unsolicited mail "
     "originating from your IP address. To protect our 421-4.7.0 users from spam, mail sent from your IP "
     "address has been temporarily 421-4.7.0 rate limited. Please visit 421-4.7.0 https://support.google."
     "com/mail/?p=UnsolicitedIPError to 421 4.7.0 review our Bulk Email Senders Guidelines. "
     "5b1f17b1804b1-43056e1e1fcsi123456.7 - gsmtp",
     "rate_limited"),
    ("gmail 4.7.0 low reputation",
     "421-4.7.0 This message is suspicious due to the very low reputation of the 421-4.7.0 sending IP "
     "address/domain. To protect our users from spam, mail 421-4.7.0 sent from your IP address has been "
     "temporarily rate limited. 421 4.7.0 https://support.google.com/mail/answer/188131 a1si2 - gsmtp",
     "rate_limited"),
    ("gmail 5.7.1 low reputation",
     "550-5.7.1 [192.0.2.10] Gmail has detected that this message is likely 550-5.7.1 suspicious due to "
     "the very low reputation of the sending 550-5.7.1 domain. To best protect our users from spam, the "
     "message has 550-5.7.1 been blocked. Please visit 550 5.7.1 https://support.google.com/mail/answer/"
     "188131 for more information. a1si2 - gsmtp",
     "blocklisted"),
    ("gmail 5.7.1 likely unsolicited",
     "550-5.7.1 [2001:db8::25      12] Our system has detected that this 550-5.7.1 message is likely "
     "unsolicited mail. To reduce the amount of spam sent 550-5.7.1 to Gmail, this message has been "
     "blocked. Please visit 550-5.7.1 https://support.google.com/mail/?p=UnsolicitedMessageError "
     "550 5.7.1 for more information. x12si34 - gsmtp",
     "spam_content"),
    ("gmail 5.1.1 user unknown",
     "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 "
     "double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. Learn "
     "more at 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-7db1a2b3c4dsi12 - gsmtp",
     "user_unknown"),
    ("gmail 4.2.2 over quota",
     "452-4.2.2 The email account that you tried to reach is over quota. Please 452-4.2.2 direct the "
     "recipient to 452 4.2.2 https://support.google.com/mail/?p=OverQuotaTemp d9443c01a7336-20b0si - gsmtp",
     "mailbox_full"),
    ("gmail 5.2.2 out of storage",
     "552-5.2.2 The recipient's inbox is out of storage space. Please direct the 552-5.2.2 recipient to "
     "552 5.2.2 https://support.google.com/mail/?p=OverQuotaPerm a2si3 - gsmtp",
     "mailbox_full"),
    ("gmail 5.7.0 security issue",
     "552-5.7.0 This message was blocked because its content presents a potential 552-5.7.0 security "
     "issue. Please visit 552-5.7.0 https://support.google.com/mail/?p=BlockedMessage to review our 552 "
     "5.7.0 message content and attachment content guidelines. e9si1 - gsmtp",
     "spam_content"),
    ("gmail 5.2.3 size",
     "552-5.2.3 Your message exceeded Google's message size limits. Please visit 552-5.2.3 "
     "https://support.google.com/mail/?p=MaxSizeError to view our size 552 5.2.3 guidelines. a3si4 - gsmtp",
     "message_too_big"),
    ("gmail 5.7.25 PTR",
     "550-5.7.25 [192.0.2.10] The IP address sending this message does not have a 550-5.7.25 PTR record "
     "setup, or the corresponding forward DNS entry does not 550-5.7.25 point to the sending IP. As a "
     "policy, Gmail does not accept messages 550-5.7.25 from IPs with missing PTR records. 550 5.7.25 "
     "https://support.google.com/mail/answer/81126#ip-practices b5si6 - gsmtp",
     "dns_error"),
    ("gmail 5.7.1 use a relay",
     "550-5.7.1 [192.0.2.10] The IP you're using to send mail is not authorized to 550-5.7.1 send email "
     "directly to our servers. Please use the SMTP relay at your 550-5.7.1 service provider instead. "
     "Learn more at 550 5.7.1 https://support.google.com/mail/?p=NotAuthorizedError c7si8 - gsmtp",
     "policy"),
    ("gmail 5.4.5 sending quota",
     "550 5.4.5 Daily user sending quota exceeded. e4si5 - gsmtp", "rate_limited"),
    ("gmail 530 starttls",
     "530 5.7.0 Must issue a STARTTLS command first. f6si7 - gsmtp", "tls_required"),
    ("gmail 535 auth",
     "535-5.7.8 Username and Password not accepted. Learn more at 535 5.7.8 "
     "https://support.google.com/mail/?p=BadCredentials g8si9 - gsmtp",
     "smtp_auth"),
    # Microsoft (Exchange Online, Outlook.com)
    ("microsoft 5.7.606 banned IP",
     "550 5.7.606 Access denied, banned sending IP [192.0.2.10]. To request removal from this list please "
     "visit https://sender.office.com/ and follow the directions. For more information please go to "
     "http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) [DB5EUR03FT012.eop-EUR03.prod.protection."
     "outlook.com 2024-05-01T10:00:00.000Z 08DC5F2A1B2C3D4E]",
     "blocklisted"),
    ("microsoft 5.7.511 banned sender",
     "550 5.7.511 Access denied, banned sender[192.0.2.10]. To request removal from this list please "
     "forward this message to delist@messaging.microsoft.com. For more information please go to "
     "http://go.microsoft.com/fwlink/?LinkId=526653. AS(4800)",
     "blocklisted"),
    ("microsoft 4.7.650 reputation rate",
     "451 4.7.650 The mail server [192.0.2.10] has been temporarily rate limited due to IP reputation. "
     "For e-mail delivery information, see https://aka.ms/postmaster (S775) [AM2PEPF0001C713.eurprd05."
     "prod.outlook.com]",
     "rate_limited"),
    ("microsoft 4.7.500 server busy",
     "451 4.7.500 Server busy. Please try again later from [192.0.2.10]. (S77714) "
     "[VI1EUR04FT041.eop-eur04.prod.protection.outlook.com]",
     "rate_limited"),
    ("microsoft 5.4.1 DBEB",
     "550 5.4.1 Recipient address rejected: Access denied. For more information see "
     "https://aka.ms/EXOSmtpErrors [AM4PEPF00027A5F.eurprd04.prod.outlook.com 2024-05-01T10:00:00.000Z "
     "08DC6E1B2C3D4E5F]",
     "user_unknown"),
    ("microsoft RecipNotFound",
     "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     "user_unknown"),
    ("outlook.com block list",
     "550 5.7.1 Unfortunately, messages from [192.0.2.10] weren't sent. Please contact your Internet "
     "service provider since part of their network is on our block list (S3150). You can also refer your "
     "provider to http://mail.live.com/mail/troubleshooting.aspx#errors. [DM6NAM12FT050.eop-nam12.prod."
     "protection.outlook.com]",
     "blocklisted"),
    ("outlook.com mailbox unavailable",
     "550 Requested action not taken: mailbox unavailable (S2017062302). [BN8NAM12FT045.eop-nam12.prod."
     "protection.outlook.com]",
     "user_unknown"),
    ("microsoft 5.7.509 DMARC",
     "550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification and has a "
     "DMARC policy of reject. [DB1PEPF000509EE.eurprd03.prod.outlook.com]",
     "sender_auth"),
    ("microsoft 5.7.64 relay",
     "550 5.7.64 TenantAttribution; Relay Access Denied [SN1NAM02FT0123.eop-nam02.prod.protection."
     "outlook.com]",
     "relay_denied"),
    ("microsoft 451 5.7.3 STARTTLS",
     "451 5.7.3 STARTTLS is required to send mail [BN8NAM11FT012.eop-nam11.prod.protection.outlook.com]",
     "tls_required"),
    # Yahoo
    ("yahoo TSS04",
     "421 4.7.0 [TSS04] Messages from 192.0.2.10 temporarily deferred due to unexpected volume or user "
     "complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     "rate_limited"),
    ("yahoo TSS09",
     "553 5.7.2 [TSS09] All messages from 192.0.2.10 will be permanently deferred; Retrying will NOT "
     "succeed. See https://postmaster.yahooinc.com/error-codes",
     "blocklisted"),
    ("yahoo 5.7.9 DMARC",
     "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
     "sender_auth"),
    ("yahoo account disabled",
     "554 delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. This account has "
     "been disabled or discontinued [#102]. - mta1272.mail.sk1.yahoo.com",
     "user_unknown"),
    ("yahoo user doesn't have an account",
     "554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - "
     "mta4012.mail.bf1.yahoo.com",
     "user_unknown"),
    # DNS blocklists, Barracuda, Proofpoint, Mimecast
    ("postfix spamhaus",
     "554 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org; "
     "https://www.spamhaus.org/query/ip/192.0.2.10",
     "blocklisted"),
    ("postscreen spamhaus",
     "550 5.7.1 Service unavailable; client [192.0.2.10] blocked using zen.spamhaus.org",
     "blocklisted"),
    ("barracuda reputation",
     "554 Service unavailable; Client host [192.0.2.10] blocked using b.barracudacentral.org; "
     "http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.10",
     "blocklisted"),
    ("barracuda appliance block",
     "550 permanent failure for one or more recipients (someone@example.com:blocked)",
     "policy"),
    ("exim RBL",
     "550 Rejected because 192.0.2.10 is in a black list at bl.spamcop.net",
     "blocklisted"),
    ("proofpoint ipcheck",
     "554 5.7.1 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.10",
     "blocklisted"),
    ("proofpoint spam",
     "550 5.7.1 Message rejected as spam by Content Filtering.",
     "spam_content"),
    ("mimecast invalid recipient",
     "550 Invalid Recipient - https://community.mimecast.com/docs/DOC-1369#550 [AbCdEfGhIjK.us123]",
     "user_unknown"),
    ("mimecast security policies",
     "554 Email rejected due to security policies - https://community.mimecast.com/docs/DOC-1369#554 "
     "[XyZ12345.uk456]",
     "policy"),
    ("mimecast unresolvable sender",
     "451 Message temporarily deferred due to unresolvable RFC.5321 from address - "
     "https://community.mimecast.com/docs/DOC-1369#451 [AbC.eu789]",
     "dns_error"),
    # Postfix, postgrey and other greylisters
    ("postgrey",
     "450 4.2.0 <someone@example.org>: Recipient address rejected: Greylisted, see "
     "http://postgrey.schweikert.ch/help/example.org.html",
     "greylisted"),
    ("postfix greylisted 4.7.1",
     "450 4.7.1 <someone@example.org>: Recipient address rejected: Greylisted for 5 minutes",
     "greylisted"),
    ("milter-greylist",
     "451 4.7.1 Greylisting in action, please come back in 00:05:00", "greylisted"),
    ("postfix relay access denied",
     "554 5.7.1 <someone@elsewhere.example>: Relay access denied", "relay_denied"),
    ("postfix size",
     "552 5.3.4 Message size exceeds fixed limit", "message_too_big"),
    ("postfix recipient domain not found",
     "450 4.1.2 <someone@nonexistent.example>: Recipient address rejected: Domain not found", "dns_error"),
    ("postfix sender domain not found",
     "450 4.1.8 <someone@nonexistent.example>: Sender address rejected: Domain not found", "dns_error"),
    ("postfix cannot find hostname 5.7.1",
     "550 5.7.1 Client host rejected: cannot find your hostname, [192.0.2.10]", "dns_error"),
    ("postfix cannot find hostname 4.7.25",
     "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.10]", "dns_error"),
    ("postfix helo host not found",
     "450 4.7.1 <ylmf-pc>: Helo command rejected: Host not found", "dns_error"),
    ("postfix starttls",
     "530 5.7.0 Must issue a STARTTLS command first", "tls_required"),
    ("postfix user unknown",
     "550 5.1.1 <someone@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
     "user_unknown"),
    ("postfix user unknown, spam local part",
     "550 5.1.1 <spam@example.org>: Recipient address rejected: User unknown in local recipient table",
     "user_unknown"),
    ("postfix access denied, spam local part",
     "554 5.7.1 <spam@example.org>: Recipient address rejected: Access denied", "policy"),
    ("postfix client access denied",
     "554 5.7.1 <host.example[192.0.2.10]>: Client host rejected: Access denied", "policy"),
    ("policyd-spf",
     "550 5.7.23 <someone@example.org>: Recipient address rejected: Message rejected due to: SPF fail - "
     "not authorized. Please see http://www.open-spf.org/Why;id=someone%40example.com;ip=192.0.2.10;"
     "r=<UNKNOWN>",
     "sender_auth"),
    ("postfix anvil connections",
     "421 4.7.0 mx.example.org Error: too many connections from 192.0.2.10", "rate_limited"),
    ("postfix too many recipients",
     "452 4.5.3 Error: too many recipients", "rate_limited"),
    ("postfix mailbox full (remote dovecot lmtp)",
     "552 5.2.2 <someone@example.org> Mailbox is full / Blocks limit exceeded / Inode limit exceeded",
     "mailbox_full"),
    ("postfix header check", "5.7.1 message content rejected", "spam_content"),
    ("postfix non-fqdn helo",
     "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname", "policy"),
    ("qmail rcpthosts",
     "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "relay_denied"),
    ("exim unrouteable",
     "550 Unrouteable address", "user_unknown"),
    ("exim auth", "535 Incorrect authentication data", "smtp_auth"),
    ("rspamd spam", "554 5.7.1 Spam message rejected", "spam_content"),
    ("amavis virus",
     "554 5.7.0 Reject, id=12345-01 - VIRUS: Eicar-Signature", "spam_content"),
    # Only an enhanced code, only a code
    ("enhanced only 5.1.1", "5.1.1", "user_unknown"),
    ("enhanced only 5.7.1", "5.7.1", "policy"),
    ("enhanced only 4.2.2", "4.2.2", "mailbox_full"),
    ("enhanced only 5.7.26", "5.7.26", "sender_auth"),
    ("enhanced only, unmapped", "5.0.0", "other"),
    ("code only 550", "550", "other"),
    ("code only 535", "535", "smtp_auth"),
    ("code only 530", "530", "smtp_auth"),
    ("code only 538 (encryption required for the mechanism)", "538", "smtp_auth"),
    ("postfix AUTH required", "530 5.7.0 Authentication required", "smtp_auth"),
    ("5.7.9 with an AUTH code: mechanism too weak",
     "534 5.7.9 Authentication mechanism is too weak", "smtp_auth"),
    ("postfix submission, AUTH refused", "535 5.7.8 Error: authentication failed: authentication failure",
     "smtp_auth"),
    ("opensmtpd AUTH required", "530 5.5.1 Invalid command: Must issue an AUTH command first", "smtp_auth"),
    ("STARTTLS required wins over AUTH text",
     "530 5.7.0 Must issue a STARTTLS command first", "tls_required"),
    ("relaying denied wins over AUTH text",
     "550 5.7.1 <a@example.net>... Relaying denied. Proper authentication required.", "relay_denied"),
    ("code only 421", "421", "other"),
    ("code only with vague text", "451 Temporary local problem - please try later", "other"),
]


def _reason(rules: ReasonRules, text: str) -> str:
    parts = split_reply(text)
    assert parts is not None, f"not a reply: {text!r}"
    return rules.reason(parts[0], parts[1], text)


@pytest.mark.parametrize("name,text,expected", REAL_REPLIES, ids=[r[0] for r in REAL_REPLIES])
def test_real_reply(name: str, text: str, expected: str) -> None:
    assert _reason(ReasonRules.default(), text) == expected


def test_the_table_covers_every_reason() -> None:
    assert {expected for _, _, expected in REAL_REPLIES} == set(REASONS)


def test_reasons_are_the_documented_labels_in_order() -> None:
    assert REASONS == ("user_unknown", "mailbox_full", "greylisted", "rate_limited", "blocklisted",
                       "spam_content", "sender_auth", "smtp_auth", "tls_required", "relay_denied",
                       "message_too_big", "dns_error", "policy", "other")


# Precedence


def test_text_beats_the_enhanced_code() -> None:
    rules = ReasonRules.default()
    assert rules.reason("550", "5.7.1", "550 5.7.1 Client host rejected: Access denied") == "policy"
    assert rules.reason("550", "5.7.1", "550 5.7.1 blocked using zen.spamhaus.org") == "blocklisted"
    assert rules.reason("450", "4.7.1", "450 4.7.1 Greylisted") == "greylisted"


def test_weak_text_yields_to_a_code() -> None:
    rules = ReasonRules.default()
    # "policy reasons" is weak evidence; Yahoo's 554 5.7.9 says more.
    assert rules.reason("554", "5.7.9", "554 5.7.9 Message not accepted for policy reasons.") == "sender_auth"
    assert rules.reason("554", "", "554 Message not accepted for policy reasons.") == "policy"


def test_the_exact_enhanced_code_comes_before_its_subject_and_detail() -> None:
    rules = ReasonRules.default()
    assert rules.reason("451", "4.7.650", "451 4.7.650 try again") == "rate_limited"
    assert rules.reason("550", "5.7.650", "550 5.7.650 try again") == "policy"
    assert rules.reason("550", "5.7.620", "550 5.7.620 go away") == "blocklisted"


def test_successful_replies_have_no_reason() -> None:
    rules = ReasonRules.from_config([{"reason": "policy", "text": "ok"}])
    assert rules.reason("250", "2.0.0", "250 2.0.0 Ok: queued as 4Xyz; greylisted before") == "other"
    assert rules.reason("354", "", "354 End data with <CR><LF>.<CR><LF>") == "other"
    assert rules.reason("", "2.1.5", "2.1.5 Ok") == "other"


def test_a_phrase_split_by_a_continuation_prefix_is_found() -> None:
    text = "550-5.7.1 this is a relay 550-5.7.1 access denied 550 5.7.1 reply"
    assert ReasonRules.default().reason("550", "5.7.1", text) == "relay_denied"


def test_phrases_match_at_word_starts_only() -> None:
    rules = ReasonRules.default()
    # "rbl" inside a word, "spf" inside a word: no evidence, the code decides.
    assert rules.reason("550", "5.7.1", "550 5.7.1 marble floor, aspfoo") == "policy"
    assert rules.reason("550", "5.7.1", "550 5.7.1 listed in an RBL") == "blocklisted"


def test_garbage_never_raises() -> None:
    rules = ReasonRules.default()
    generator = random.Random(7)
    alphabet = "abcxyz 0123456789.-[]()<>@:;\\*?+|^$\n\t\x00é€😀"
    for _ in range(2000):
        text = "".join(generator.choice(alphabet) for _ in range(generator.randrange(0, 300)))
        code = generator.choice(["", "550", "451", "999", "5", "abc"])
        enhanced = generator.choice(["", "5.7.1", "4.7.999", "9.9.9", "5.07.001", "x.y.z", "5."])
        assert rules.reason(code, enhanced, text) in REASONS
    assert rules.reason("", "", "") == "other"
    assert rules.reason("550", "", "550 \x00\x01 ???") == "other"
    # Leading zeros, which RFC 3463 forbids, read as the number.
    assert rules.reason("550", "5.01.001", "") == "user_unknown"


def test_long_flattened_reply_is_classified() -> None:
    filler = "550-5.7.1 " + "lorem ipsum dolor sit amet " * 150
    text = filler + "550 5.7.1 blocked using zen.spamhaus.org"
    assert len(text) > 4000
    assert ReasonRules.default().reason("550", "5.7.1", text) == "blocklisted"


def test_the_cache_does_not_mix_up_rule_sets() -> None:
    text = "550 5.7.1 Message rejected"
    assert ReasonRules.default().reason("550", "5.7.1", text) == "policy"
    custom = ReasonRules.from_config([{"reason": "spam_content", "text": "message rejected"}])
    assert custom.reason("550", "5.7.1", text) == "spam_content"
    assert custom.reason("550", "5.7.1", text) == "spam_content"
    assert ReasonRules.default().reason("550", "5.7.1", text) == "policy"


# User rules


def test_user_rules_come_before_the_bundled_table() -> None:
    rules = ReasonRules.from_config([
        {"reason": "policy", "text": r"(?i)spamhaus|blocked using", "code": "554", "enhanced": "5.7.1"},
        {"reason": "greylisted", "enhanced": "4.7.*"},
        {"reason": "relay_denied", "code": 551},
        {"reason": "mailbox_full", "code": "45x", "enhanced": "*.2.0"},
    ])
    spamhaus = "Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org"
    assert rules.reason("554", "5.7.1", f"554 5.7.1 {spamhaus}") == "policy"
    # Every matcher must hold: another code falls through to the bundled table.
    assert rules.reason("550", "5.7.1", f"550 5.7.1 {spamhaus}") == "blocklisted"
    assert rules.reason("421", "4.7.0", "421 4.7.0 [TSS04] Messages temporarily deferred") == "greylisted"
    assert rules.reason("551", "", "551 User not local; please try <x@example.org>") == "relay_denied"
    assert rules.reason("452", "4.2.0", "452 4.2.0 try later") == "mailbox_full"
    assert rules.reason("552", "5.2.0", "552 5.2.0 try later") == "other"
    # A matcher on a part the reply lacks does not match.
    assert rules.reason("", "5.7.1", f"5.7.1 {spamhaus}") == "blocklisted"


def test_first_user_rule_wins() -> None:
    rules = ReasonRules.from_config([
        {"reason": "spam_content", "text": "rejected"},
        {"reason": "policy", "text": "message rejected"},
    ])
    assert rules.reason("550", "5.7.1", "550 5.7.1 Message rejected") == "spam_content"


def test_user_text_is_searched_anywhere_ignoring_case() -> None:
    rules = ReasonRules.from_config([{"reason": "blocklisted", "text": "CLOUDMARK"}])
    assert rules.reason("554", "", "554 rejected, see csi.cloudmark.com/reset-request") == "blocklisted"


def test_empty_user_rules_are_the_bundled_table() -> None:
    rules = ReasonRules.from_config([])
    for _, text, expected in REAL_REPLIES[:10]:
        assert _reason(rules, text) == expected


BAD_RULES = [
    ({"reasons": "x"}, "reasons", "must be a list such as [{reason: blocklisted"),
    (["blocklisted"], "reasons[0]", "must be a mapping of a reason and matchers, such as"),
    ([{"code": "550"}], "reasons[0].reason", "missing; give one of: user_unknown, mailbox_full"),
    ([{"reason": "spam", "text": "x"}], "reasons[0].reason",
     "'spam' is not a reason; use one of: user_unknown, mailbox_full, greylisted, rate_limited, blocklisted, "
     "spam_content, sender_auth, smtp_auth, tls_required, relay_denied, message_too_big, dns_error, policy, "
     "other"),
    ([{"reason": "auth_failed", "code": "535"}], "reasons[0].reason",
     "auth_failed was split in two; use sender_auth (SPF, DKIM, DMARC, ARC) or smtp_auth"),
    ([{"reason": "policy", "txt": "x"}], "reasons[0].txt",
     "unknown key (did you mean 'text'?); the known keys are: reason, code, enhanced, text"),
    ([{"reason": "policy"}], "reasons[0]", "has no matcher; give at least one of code, enhanced or text"),
    ([{"reason": "policy", "code": "600"}], "reasons[0].code", "'600' is not the code of a failed reply"),
    ([{"reason": "policy", "code": "250"}], "reasons[0].code", "use 4xx or 5xx with x for any digit"),
    ([{"reason": "policy", "code": "5"}], "reasons[0].code", "e.g. 550, 55x or 5xx"),
    ([{"reason": "policy", "code": True}], "reasons[0].code", "True is not the code"),
    ([{"reason": "policy", "enhanced": "5.7"}], "reasons[0].enhanced",
     "'5.7' is not the enhanced code of a failed reply; use class.subject.detail"),
    ([{"reason": "policy", "enhanced": 5.7}], "reasons[0].enhanced", "5.7 is not the enhanced code"),
    ([{"reason": "policy", "enhanced": "2.0.0"}], "reasons[0].enhanced", "e.g. 5.7.1, 5.7.* or *.7.26"),
    ([{"reason": "policy", "enhanced": "5.7.1234"}], "reasons[0].enhanced", "not the enhanced code"),
    ([{"reason": "policy", "code": "450", "enhanced": "5.7.1"}], "reasons[0].enhanced",
     "class 5 never comes with code 450; make the classes agree or drop one of them"),
    ([{"reason": "policy", "text": ""}], "reasons[0].text", "got ''; give a regex such as"),
    ([{"reason": "policy", "text": ["a"]}], "reasons[0].text", "got ['a']; give a regex"),
]


@pytest.mark.parametrize("rules,key,message", BAD_RULES, ids=[b[1] + ":" + b[2][:24] for b in BAD_RULES])
def test_bad_rule(rules, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ReasonRules.from_config(rules, Checker("rules.yml"), "reasons")
    assert caught.value.key == key
    assert message in caught.value.problem
    assert str(caught.value) == f"rules.yml: {key}: {caught.value.problem}"


def test_bad_regex_names_position_key_and_fix() -> None:
    rules = [{"reason": "policy", "code": "550"}, {"reason": "policy", "enhanced": "5.7.*"},
             {"reason": "blocklisted", "text": "(spam"}]
    with pytest.raises(ConfigError) as caught:
        ReasonRules.from_config(rules, Checker("rules.yml"), "reasons")
    assert str(caught.value) == (
        "rules.yml: reasons[2].text: bad regex: missing ), unterminated subpattern at position 0; fix the pattern")


def test_errors_name_the_given_key_path() -> None:
    with pytest.raises(ConfigError, match=re.escape("classify.reasons[0].reason: 'x' is not a reason")):
        ReasonRules.from_config([{"reason": "x", "code": "550"}], Checker("rules.yml"), "classify.reasons")


def test_wildcards_accepted() -> None:
    rules = ReasonRules.from_config([
        {"reason": "dns_error", "code": "4xx", "enhanced": "*.4.*"},
        {"reason": "policy", "code": "5XX", "enhanced": "5.*.*"},
        {"reason": "spam_content", "enhanced": "*.*.*"},
    ])
    assert rules.reason("451", "4.4.0", "451 4.4.0 whatever") == "dns_error"
    assert rules.reason("550", "5.1.1", "550 5.1.1 User unknown") == "policy"
    assert rules.reason("", "4.2.2", "4.2.2 over quota") == "spam_content"
    assert rules.reason("421", "", "421 greylisted") == "greylisted"
