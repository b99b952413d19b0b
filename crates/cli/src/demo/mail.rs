//! The demo's mail: four messages, two Irish mailboxes and one US mailbox, one of the Irish
//! messages delivered by the US side.

/// One message and how it arrives.
pub(crate) struct Mail {
    /// Its key in the mail bucket (`MAILBOX/INBOX/N.eml`).
    pub(crate) key: &'static str,
    /// Its mailbox.
    pub(crate) mailbox: &'static str,
    /// The mailbox's home region (from the residency rules).
    pub(crate) home: &'static str,
    /// The region of the gateway that delivers it.
    pub(crate) via: &'static str,
    /// The message.
    pub(crate) text: &'static str,
}

impl Mail {
    /// The message's `Subject:` value.
    pub(crate) fn subject(&self) -> &'static str {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("")
    }

    /// Strings of the message the store must never hold: the whole message and every line
    /// of ten or more bytes (headers and body).
    pub(crate) fn needles(&self) -> Vec<&'static [u8]> {
        let mut out = vec![self.text.as_bytes()];
        out.extend(
            self.text
                .lines()
                .filter(|l| l.len() >= 10)
                .map(str::as_bytes),
        );
        out
    }
}

/// Aoife's first message, delivered in Ireland.
pub(crate) const AOIFE_1: Mail = Mail {
    key: "aoife@example.ie/INBOX/0001.eml",
    mailbox: "aoife@example.ie",
    home: "ie",
    via: "ie",
    text: "From: Niamh Byrne <niamh@example.ie>\n\
           To: Aoife Murphy <aoife@example.ie>\n\
           Subject: Board minutes, Thursday\n\
           Date: Thu, 05 Nov 2026 09:14:00 +0000\n\
           Message-ID: <20261105091400.4711@example.ie>\n\
           \n\
           Aoife,\n\
           The draft minutes of Thursday's board meeting are attached. The\n\
           acquisition figures stay confidential until the announcement.\n\
           Niamh\n",
};

/// Aoife's second message: from a US sender, delivered by the US side's mail server
/// through the US gateway.
pub(crate) const AOIFE_2: Mail = Mail {
    key: "aoife@example.ie/INBOX/0002.eml",
    mailbox: "aoife@example.ie",
    home: "ie",
    via: "us",
    text: "From: Mark Chen <mark@example.com>\n\
           To: Aoife Murphy <aoife@example.ie>\n\
           Subject: Re: shipping schedule for Q1\n\
           Date: Thu, 05 Nov 2026 16:02:11 -0500\n\
           Message-ID: <8c1e2f@example.com>\n\
           \n\
           Hi Aoife, the first containers leave Savannah on January 9th.\n\
           Mark\n",
};

/// Brian's message: Irish, and no approval ever names his mailbox.
pub(crate) const BRIAN_1: Mail = Mail {
    key: "brian@example.ie/INBOX/0001.eml",
    mailbox: "brian@example.ie",
    home: "ie",
    via: "ie",
    text: "From: Siobhan Walsh <siobhan@example.ie>\n\
           To: Brian Kelly <brian@example.ie>\n\
           Subject: Lunch on Friday?\n\
           Date: Fri, 06 Nov 2026 11:30:00 +0000\n\
           Message-ID: <77aa01@example.ie>\n\
           \n\
           Brian, are you free for lunch at the Winding Stair on Friday?\n\
           Siobhan\n",
};

/// Jane's message: a US mailbox, written and read in the US.
pub(crate) const JANE_1: Mail = Mail {
    key: "jane@example.com/INBOX/0001.eml",
    mailbox: "jane@example.com",
    home: "us",
    via: "us",
    text: "From: Payroll <payroll@example.com>\n\
           To: Jane Doe <jane@example.com>\n\
           Subject: Your November payslip\n\
           Date: Mon, 30 Nov 2026 08:00:00 -0500\n\
           Message-ID: <payslip-2026-11@example.com>\n\
           \n\
           Jane, your payslip for November is ready: net pay $4,812.33.\n\
           Payroll\n",
};

/// Every message, in delivery order.
pub(crate) const ALL: [&Mail; 4] = [&AOIFE_1, &BRIAN_1, &JANE_1, &AOIFE_2];
