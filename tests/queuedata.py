"""Queue listings shared by the queue probe's tests (the readers, the daemon, the Prometheus end-to-end test)."""

POSTQUEUE_J = (
    # As Postfix 3.7 prints them (the lab's), one per queue.
    '{"queue_name": "deferred", "queue_id": "3BBBF172073", "arrival_time": 1773140000, "message_size": 250, '
    '"forced_expire": false, "sender": "MAILER-DAEMON", "recipients": [{"address": "a@dead.test", '
    '"delay_reason": "connect to 127.0.0.1[127.0.0.1]:1: Connection refused"}]}\n'
    '{"queue_name": "deferred", "queue_id": "4CCCF172074", "arrival_time": 1773139000, "message_size": 1000, '
    '"forced_expire": false, "sender": "", "recipients": [{"address": "b@dead.test"}]}\n'
    '{"queue_name": "hold", "queue_id": "5DDDF172075", "arrival_time": 1773141000, "message_size": 7, '
    '"forced_expire": false, "sender": "", "recipients": [{"address": "c@x.test"}]}\n'
    "\n"
)
