"""Gladly's report header rows, as data (issue 25 point 1): every column of each report Gladly's API answers,
in Gladly's order and spelling, filter columns included, with the public source each list was read from;
and Gladly's other report names, with what convoscope lacks to produce them.

Sources (docs/gladly.md says per column how sure its spelling is):
- TAP: harrystech/tap-gladly, `tap_gladly/schemas/report_conversation_export.json` at commit
  d22459bca6be6aab5380a228d5ee89963c708993, a schema generated from a real CSV: every header verbatim.
- RC: rosecape/airbyte, branch feature/source-gladly, `airbyte-integrations/connectors/source-gladly/
  source_gladly/schemas/*.json` (contact_export_report_v3.json at 2e2b70f590ad4d5f522607ea859077570e0679fb,
  the summaries at 71aabef5ce5d3e2153258afde204950caffef7c4) and the real sync logs `output.txt`,
  `output2.txt` at 12f80cd203b9e4e2a3ce1e7083da2440c2ce1d96: the order of every column is certain, but the
  connector snake-cases headers, so most spellings are reconstructed from a key such as
  `avg_queuedtofulfilled_time_sec` (its snake-cased form is certain).
- HELP: Gladly's help pages "Contact Export", "Contact Summary", "Conversation Summary" and "Gladly AI
  Sessions Detail Report" (help.gladly.com, connect.gladly.com), for the labels they print.
"""

from __future__ import annotations

# Gladly's "Payment …" columns end every contact and conversation report (verbatim in TAP's list).
_PAYMENTS = ("Payment Requests - Completed", "Payment Requests - Declined", "Payment Amount - Completed USD",
             "Payment Amount - Declined USD")

# ContactExportReportV3: RC contact_export_report_v3.json @2e2b70f5 (63 keys, header order); spellings of
# Queued At … Final IVR Selection from HELP "Contact Export", the filter and payment columns verbatim
# elsewhere, the rest reconstructed from RC's keys.
CONTACT_EXPORT_V3 = (
    "Timezone Filter", "Channel Filter", "Inboxes Filter", "Queued At", "Customer ID", "Conversation ID",
    "Contact ID", "Conversation Link", "Channel", "Direction", "Contact Initiator", "Entry Point",
    "Final IVR Selection", "Fulfilled Type", "Status", "Inbox When Queued", "Inbox When Ended",
    "Agent When Ended", "Offered At", "Accepted At", "Fulfilled At", "Due At", "Ended At",
    "Answered At (Outbound)", "SLA Target (sec)", "Queued-to-Fulfilled (sec)",
    "Queued-to-Fulfilled Within Business Hours (sec)", "Queued-to-Accepted (sec)", "Queued-to-Ended (sec)",
    "Accepted-to-Fulfilled (sec)", "Seconds Within (+) or Over (-) SLA", "Fulfilled-to-Ended (sec)",
    "Fulfilled by Contact ID", "Contact Handle Time (sec)", "After Contact Time (sec)",
    "Total Contact Handle Time (sec)", "Total Talk Time", "Hold Time Total (sec)", "Hold Time - Manual (sec)",
    "Hold Time - Warm Transfer (sec)", "Hold Time - Cold Transfer (sec)", "Hold Time - Conference (sec)",
    "Messages Total", "Messages from Customer", "Messages from Agent", "Messages from Rules",
    "Messages from API", "Avg. Agent Reply Time (sec)", "Avg. Customer Reply Time (sec)", "Times Offered",
    "Times Accepted", "Times Missed", "Times Declined", "Times Transferred", "Times On Hold Total",
    "Times On Hold - Manual", "Times On Hold - Warm Transfer", "Times On Hold - Cold Transfer",
    "Times On Hold - Conference", *_PAYMENTS,
)
# ContactExportReport and ContactExportReportV2: no public header list exists (RC's schemas for them are
# empty placeholders); answered with V3's columns (decision 90).
CONTACT_EXPORT = CONTACT_EXPORT_V3
CONTACT_EXPORT_V2 = CONTACT_EXPORT_V3

# ConversationExportReport: TAP report_conversation_export.json @d22459bc, verbatim (55 headers); RC's
# conversation_export_report.json @3f776897 is the same list snake-cased, in the same order.
CONVERSATION_EXPORT = (
    "Timezone Filter", "Inboxes Filter", "Created At", "Conversation ID", "Customer ID", "Conversation Link",
    "Status", "Assigned Agent ID - Current", "Assigned Agent Name - Current", "Inbox ID - Current",
    "Inbox Name - Current", "First Closed At", "Last Closed At", "Initiator Type - Created",
    "Initiator Agent ID - Created", "Initiator Agent Name - Created", "Inbox ID - Created",
    "Inbox Name - Created", "Assigned Agent ID - Created", "Assigned Agent Name - Created",
    "Initiator Type - Last Closed", "Initiator Agent ID - Last Closed", "Initiator Agent Name - Last Closed",
    "Initiator Rule ID - Last Closed", "Inbox ID - Last Closed", "Inbox Name - Last Closed",
    "Assigned Agent ID - Last Closed", "Assigned Agent Name - Last Closed", "Topics", "Topics with Hierarchy",
    "First Contact ID", "First Channel", "Second Channel", "Third Channel", "Last Channel",
    "Created-to-First Closed Time in seconds", "Created-to-Last Closed Time in seconds",
    "Conversation Handle Time in seconds", "Is FCR Eligible", "Is FCR Success", "Merged Conversations",
    "Count of Contacts", "Count of Channels", "Count of Notes", "Count of Agents Assigned",
    "Count of Inboxes Assigned", "Times Agent Unassigned by Rule", "Times Closed", "Times Reopened",
    "Times Topic Added", "Times Topic Removed", *_PAYMENTS,
)

# ContactSummaryReport: RC contact_summary_report.json @71aabef5, equal to the key order of the real rows in
# RC output2.txt @12f80cd2 (49 columns); labels up to Contacts Fulfilled by Response from HELP "Contact
# Summary", the rest reconstructed from RC's keys.
_SUMMARY_HEAD = (
    "Timezone Filter", "Channel Filter", "Inboxes Filter", "Ended At Date", "Contacts Ended", "Contacts Inbound",
    "Contacts Fulfilled", "Contacts Fulfilled before SLA", "Contacts Fulfilled after SLA",
    "Contacts Fulfilled by Response", "Contacts Accepted before SLA", "Contacts Abandoned",
    "Contacts Abandoned within 5 Seconds", "Contacts Abandoned within 10 Seconds",
    "Contacts Abandoned within 15 Seconds", "Service Level %", "Avg. Queued-to-Fulfilled Time (sec)",
    "Max. Queued-to-Fulfilled Time (sec)",
)
_SUMMARY_BUSINESS_HOURS = ("Avg. Queued-to-Fulfilled Time Within Business Hours (sec)",
                           "Max. Queued-to-Fulfilled Time Within Business Hours (sec)")
_SUMMARY_TAIL = (
    "Avg. Queued-to-First Accepted Time (sec)", "Avg. Queued-to-Ended Time (sec)",
    "Avg. First Accepted-to-Fulfilled (sec)", "Avg. Due-to-Fulfilled Time (sec)",
    "Avg. Fulfilled-to-Ended Time (sec)", "Avg. Inbound Contact Handle Time (sec)",
    "Avg. Inbound After Contact Time (sec)", "Contacts Outbound", "Avg. Outbound Contact Handle Time (sec)",
    "Avg. Outbound After Contact Time (sec)", "Avg. Talk Time (sec)", "Avg. Hold Time - Total (sec)",
    "Avg. Hold Time - Manual (sec)", "Avg. Hold Time - Warm Transfer (sec)", "Avg. Hold Time - Cold Transfer (sec)",
    "Avg. Hold Time - Conference (sec)", "Avg. Messages Total", "Avg. Messages from Customer",
    "Avg. Messages from Agent", "Avg. Messages from Rules", "Avg. Messages from API",
    "Avg. of Avg. Agent Reply Time (sec)", "Avg. of Avg. Customer Reply Time (sec)",
    "Unique Customers with Contact Fulfilled", "Unique Customers with Contact Ended",
    "Unique Customers with an Inbound Contact Ended", "Unique Customers with an Outbound Contact Ended",
    *_PAYMENTS,
)
CONTACT_SUMMARY = (*_SUMMARY_HEAD, *_SUMMARY_TAIL)
# ContactSummaryReportV2: RC contact_summary_report_v2.json @71aabef5 = the real rows of RC output2.txt
# (51 columns): V1 with the two business-hours columns after Max. Queued-to-Fulfilled Time.
CONTACT_SUMMARY_V2 = (*_SUMMARY_HEAD, *_SUMMARY_BUSINESS_HOURS, *_SUMMARY_TAIL)

# ConversationSummaryReport: RC conversation_summary_report.json @71aabef5 = the real rows of RC output2.txt
# (26 columns); labels up to Avg Times Closed from HELP "Conversation Summary", the rest reconstructed.
CONVERSATION_SUMMARY = (
    "Timezone Filter", "Inboxes Filter", "Teams Filter", "Last Closed At", "Conversations Closed",
    "Unique Customers", "% Multichannel", "% FCR Success", "Count of FCR Eligible", "Avg Count of Contacts",
    "Avg Count of Channels", "Avg Count of Notes", "Avg Count of Agents Assigned", "Avg Count of Inboxes Assigned",
    "Avg Times Closed", "Avg Times Reopened", "Avg Times Topic Added", "Avg Times Topic Removed",
    "Avg Created-to-First Closed Time in seconds", "Avg Created-to-Last Closed Time in seconds",
    "Avg Conversation Handle Time in seconds", "Count of Conversation Merges", *_PAYMENTS,
)

# GladlyAISessionsDetailReport (and …WithMessagesReport): HELP "Gladly AI Sessions Detail Report" is the seed
# of SPEC 4.2, whose columns these are, in its order; no public list goes further (decision 90).
AI_SESSIONS_DETAIL = (
    "Session ID", "Customer ID", "Conversation ID", "Channel", "Gladly Agent", "Guides Used", "Created Date",
    "Was Handed Off", "Was Resolved", "Was Recontacted Resolution - 24 Hours", "Was Responded To",
    "Handoff Category", "Handoff Subcategory", "Handoff Reason", "Transfer Rationale", "Conversation Link",
)
AI_SESSIONS_DETAIL_WITH_MESSAGES = (*AI_SESSIONS_DETAIL, "Message History")

# Gladly's other metricSets (the enums of Gladly's OpenAPI document, 2025 and 2026 states) by lower-cased
# name, and what convoscope's log lacks to produce each: the API's 400 says so.
UNSUPPORTED: dict[str, str] = {name.lower(): lacks for names, lacks in (
    (("AgentAwayTimeReport", "AgentLoginTimeReport", "AgentAvailableTimeReportV2", "AgentTimestampsReport"),
     "agent status events (log-ins, away and available time)"),
    (("AgentDurationsReport", "AgentDurationsReportV2", "AgentSummary", "AgentSummaryV2", "AgentSummaryGlanceReport",
      "AgentSummaryGlanceReportV2"), "agent work time (offers, accepts, handle and after-contact time)"),
    (("FirstContactResolutionByAgentV2Report",), "first-contact-resolution flags and agent assignment"),
    (("WorkSessionEventsReportV3", "WorkSessionEventsReportV4", "WorkSessionsReport", "WorkSessionsReportV3"),
     "agent work sessions"),
    (("PaymentsByAgentReport", "PaymentsSummaryReport"), "payments"),
    (("AnswerUsageReport", "AnswerUsageByAgentReport", "HelpCenterAnswerSearchReport", "HelpCenterAnswerUsageReport",
      "GladAppAnswerSearchReport", "GladAppAnswerUsageReport", "GladAppContactPointsReport",
      "SidekickAnswerSearchReport", "SidekickAnswerUsageReport", "SidekickContactPointsReport"),
     "Gladly Answers and help-center usage"),
    (("ChannelMixReportV2", "ChannelWaitTimeReport", "ChannelWaitTimeReportV2", "ContactSummaryCountsReport",
      "ContactSummaryDurationsReport", "ContactSummaryDurationsReportV2"),
     "queue, offer and SLA events (use ContactSummaryReportV2)"),
    (("ContactTimestampsReport",),
     "contact events beyond a contact's start and end (use ContactExportReportV3)"),
    (("AbandonedCallsInIVRReport", "IVRExecutiveSummaryReportV2", "IvrEndStatesReportV2"), "IVR data"),
    (("ProactiveVoiceSummaryReport",), "proactive voice campaigns"),
    (("TopicHierarchyReport", "TopicSummaryReport"), "conversation topics"),
    (("TaskExportReport", "TaskSummaryReport", "TaskTimestampsReport"), "tasks"),
    (("AutoThrottleChangesReport", "AutoThrottleMissedConversationsReport", "ChatDisplayPctChangesReport"),
     "chat throttling"),
    (("QuickActionsUsageReport",), "quick actions"),
    (("SelfServiceThreadsReport",), "self-service threads"),
    (("SidekickAssistsByClassificationTopicReport", "ConversationSidekickExportReport"),
     "Sidekick assist classifications"),
) for name in names}
