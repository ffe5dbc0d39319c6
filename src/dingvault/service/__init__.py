"""The always-on service, ``dingvault serve``: event capture, schedules, replication, alerts.

One process hosts (see ``app.ServiceApp``):

* ``events.StreamListener`` - the official ``dingtalk-stream`` SDK's protocol handling under a
  reconnect loop with back-off; every event and robot message is written to the durable
  ``state.ServiceState`` inbox *before* it is ACKed, so a crash means redelivery, never loss;
* ``runner.RunCoordinator`` - drains the inbox into small event-driven runs (``targeted``),
  catch-up incrementals after a gap, and the scheduled runs (``scheduler``); runs never overlap;
* ``replicator.ReplicationGlue`` - continuous shipping to the replicas, lag for alerts/metrics;
* ``offboarding`` - on ``user_leave_org``: capture now, hold, hand-over summary;
* ``alerts``, ``metrics``, ``health`` - telling people and machines how it goes.
"""
