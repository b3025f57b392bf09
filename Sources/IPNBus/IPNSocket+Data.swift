import CIPNSys
import Glibc

/// The data path of a node: send into the outbox (or the pool), receive from the inbox.
extension IPNSocket {
    // MARK: send

    /// Sends one message (IPN `send`): at most the bus MTU; never split.
    /// On a lossless bus a full queue blocks, or throws `.wouldBlock` when `nonBlocking`.
    public func send(_ bytes: UnsafeRawBufferPointer, nonBlocking: Bool = false) throws(IPNError) {
        try send(length: bytes.count, nonBlocking: nonBlocking) { out in
            if let base = bytes.baseAddress, bytes.count > 0 { out.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
        }
    }

    public func send(_ bytes: [UInt8], nonBlocking: Bool = false) throws(IPNError) {
        let result = bytes.withUnsafeBytes { b in Result { () throws(IPNError) in try send(b, nonBlocking: nonBlocking) } }
        try result.get()
    }

    /// Sends a message of `length` bytes written in place by `fill`: straight into the shared ring
    /// or this node's pool, so a large payload is written exactly once for all receivers.
    public func send(length: Int, nonBlocking: Bool = false, _ fill: (UnsafeMutableRawBufferPointer) -> Void) throws(IPNError) {
        guard isConnected, let outbox, let busOptions else { throw closedReason != nil ? .busGone(path: path ?? "") : .notConnected }
        guard canSend else {
            // Not shut down by this node: the bus file does not grant it w.
            if !shutWrite && !rights.contains(.send) { throw .permissionDenied(path: path ?? "", missing: .send) }
            throw .shutDown(direction: "send")
        }
        guard length <= busOptions.mtu else { throw .mtuExceeded(size: length, mtu: busOptions.mtu) }
        if closedReason != nil { throw .busGone(path: path ?? "") }
        var header = SlotHeader(length: UInt32(length), kind: .inline, sender: 0, flags: 0, sequence: sequence, poolPosition: 0)
        if length > inlineCapacity {
            let position = try reservePool(length: length, nonBlocking: nonBlocking)
            let target = pool!.bytes(at: position, length: length)
            // Publish the reuse before writing, so a reader still holding these bytes can tell.
            let reuse = position + UInt64(length) > UInt64(pool!.capacity) ? position + UInt64(length) - UInt64(pool!.capacity) : 0
            pool!.reclaim(upTo: reuse)
            fill(UnsafeMutableRawBufferPointer(start: target, count: length))
            header.kind = .pool
            header.poolPosition = position
            let slotIndex = try reserveOutbox(nonBlocking: nonBlocking)
            poolNext = position + UInt64(length)
            header.store(at: outbox.slot(slotIndex))
        } else {
            let slotIndex = try reserveOutbox(nonBlocking: nonBlocking)
            let slot = outbox.slot(slotIndex)
            fill(UnsafeMutableRawBufferPointer(start: slot + SlotHeader.size, count: length))
            header.store(at: slot)
        }
        let old = outboxWrite
        outboxWrite += 1
        sequence &+= 1  // a free-running counter: receivers compare it as a serial number
        if outbox.publish(from: old, to: outboxWrite) { _ = ipn_eventfd_signal(doorbellFD) }
    }

    private func reserveOutbox(nonBlocking: Bool) throws(IPNError) -> UInt64 {
        let outbox = self.outbox!
        let capacity = UInt64(outbox.capacity)
        while true {
            if outboxWrite &- outboxReadSeen < capacity { return outboxWrite }
            let r = outbox.read.load(ordering: .sequentiallyConsistent)
            guard outbox.validatedOccupancy(write: outboxWrite, read: r) != nil else {
                throw .protocolViolation("outbox cursors corrupted")
            }
            outboxReadSeen = r
            if outboxWrite &- r < capacity { return outboxWrite }
            if nonBlocking { throw .wouldBlock }
            if outbox.armProducerWait(producerWrite: outboxWrite) { continue }
            try waitForWake()
            if closedReason != nil { throw .busGone(path: path ?? "") }
        }
    }

    /// Finds room for `length` bytes in this node's pool (creating it on first use). On a lossless
    /// bus, waits until the bytes to be reused were read by everyone.
    private func reservePool(length: Int, nonBlocking: Bool) throws(IPNError) -> UInt64 {
        if pool == nil { try createPool() }
        let pool = self.pool!
        let position = pool.placement(next: poolNext, length: length)
        let end = position + UInt64(length)
        guard busOptions!.lossless, end > UInt64(pool.capacity) else { return position }
        let needed = end - UInt64(pool.capacity)
        while pool.released.load(ordering: .sequentiallyConsistent) < needed {
            if nonBlocking { throw .wouldBlock }
            pool.senderWaiting.store(1, ordering: .sequentiallyConsistent)
            if pool.released.load(ordering: .sequentiallyConsistent) >= needed { break }
            _ = ipn_eventfd_signal(doorbellFD)
            try waitForWake()
            if closedReason != nil { throw .busGone(path: path ?? "") }
        }
        return position
    }

    /// Makes this node's pool now, if it has none: its creation waits for the host's answer on the control
    /// path, so a node whose control path another thread reads makes it before that thread starts.
    public func preparePool() throws(IPNError) {
        if pool == nil { try createPool() }
    }

    private func createPool() throws(IPNError) {
        let size = SenderPool.totalSize(capacity: busOptions!.effectivePoolBytes)
        // The host seals it against every later writer once it has mapped it (receivers only read it).
        let memory = try SharedMemory(creating: "ipn-pool", size: size, sealLater: true)
        try control!.send(.poolCreated(size: size), fds: [memory.fd])
        guard case .done = try awaitReply() else { throw .protocolViolation("unexpected reply to pool creation") }
        poolMemory = memory
        pool = SenderPool(base: memory.base, totalSize: memory.size)
    }

    /// Sleeps until the host signals this node (data, space) or a control message arrives.
    func waitForWake(timeoutMilliseconds: Int32 = -1) throws(IPNError) {
        var tokens = [UInt64](repeating: 0, count: 4)
        let n = ipn_epoll_wait(epollFD, &tokens, 4, timeoutMilliseconds)
        if n < 0 && errno != EINTR { throw .system(call: "epoll_wait", errno: Sys.lastErrno) }
        _ = ipn_eventfd_drain(wakeFD)
        try pumpControl(blocking: false)
        if closedReason != nil && control != nil, inbox.map({ $0.available(consumerRead: inboxRead) ?? 0 }) == 0 {
            throw .busGone(path: path ?? "")
        }
    }

    // MARK: receive

    /// Receives one message (IPN `recv`), copying it out. Blocks until one arrives unless
    /// `nonBlocking` (then nil when none is waiting) or `timeout` (seconds; nil when it passes).
    /// Membership notices (when `wantsMembership`) come first, as IPN's out-of-band messages did.
    public func receive(nonBlocking: Bool = false, timeout: Double? = nil) throws(IPNError) -> Message? {
        switch try next(nonBlocking: nonBlocking, timeout: timeout, includeEvents: true, { view in
            Message(kind: .data, bytes: Array(view.bytes), sender: view.sender, sequence: view.sequence, afterGap: view.afterGap)
        }) {
        case .none: return nil
        case .data(let m): return m
        case .event(let e): return e
        }
    }

    /// Zero-copy receive: `body` reads the message in place (in the inbox ring or the sender's
    /// read-only pool) and returns what it extracted. A pool message the sender reused while `body`
    /// read it is discarded, counted in `lapped`, and the next message is read instead.
    /// Membership notices stay queued for `receive`.
    public func withNextMessage<T>(nonBlocking: Bool = false, timeout: Double? = nil,
                                   _ body: (MessageView) -> T) throws(IPNError) -> T? {
        if case .data(let t) = try next(nonBlocking: nonBlocking, timeout: timeout, includeEvents: false, body) { return t }
        return nil
    }

    private enum Delivery<T> { case data(T), event(Message) }

    private func next<T>(nonBlocking: Bool, timeout: Double?, includeEvents: Bool,
                         _ body: (MessageView) -> T) throws(IPNError) -> Delivery<T>? {
        let deadline = timeout.map { ipn_monotonic_ns() + UInt64(max(0, $0) * 1e9) }
        while true {
            if includeEvents && !events.isEmpty { return .event(events.removeFirst()) }
            guard isConnected, let inbox else { throw closedReason != nil ? .busGone(path: path ?? "") : .notConnected }
            if !canReceive && inboxRead == inboxWriteSeen && (inbox.available(consumerRead: inboxRead) ?? 0) == 0 {
                // Like IPN's OOB, membership notices still reach a node that shut its read side.
                guard includeEvents && wantsMembership else {
                    // Not shut down by this node: the bus file does not grant it r.
                    if !shutRead && !rights.contains(.receive) { throw .permissionDenied(path: path ?? "", missing: .receive) }
                    throw .shutDown(direction: "receive")
                }
            }
            if inboxRead == inboxWriteSeen {
                guard let available = inbox.available(consumerRead: inboxRead) else {
                    throw .protocolViolation("inbox cursors corrupted")
                }
                inboxWriteSeen = inboxRead + UInt64(available)
            }
            if inboxRead < inboxWriteSeen {
                if let result = try consumeOne(inbox, body) { return .data(result) }
                continue
            }
            // Empty: look at control notices, then sleep.
            try pumpControl(blocking: false)
            if includeEvents && !events.isEmpty { continue }
            if closedReason != nil { throw .busGone(path: path ?? "") }
            _ = ipn_eventfd_drain(wakeFD)
            if (inbox.available(consumerRead: inboxRead) ?? 0) > 0 { continue }
            if nonBlocking { return nil }
            var wait: Int32 = -1
            if let deadline {
                let now = ipn_monotonic_ns()
                if now >= deadline { return nil }
                wait = Int32(min(60_000, max(1, (deadline - now + 999_999) / 1_000_000)))
            }
            try waitForWake(timeoutMilliseconds: wait)
        }
    }

    /// Reads the slot at the read cursor and releases it. nil when it had to be discarded.
    private func consumeOne<T>(_ inbox: MessageRing, _ body: (MessageView) -> T) throws(IPNError) -> T? {
        let slot = inbox.slot(inboxRead)
        defer {
            inboxRead += 1
            if inbox.release(to: inboxRead) { _ = ipn_eventfd_signal(doorbellFD) }
            if !retiring.isEmpty { retirePools() }
        }
        // Everything in the slot was written by another process: its kind, length and pool reference are
        // checked before they index anything, and a slot that fails is counted, skipped and flagged as a gap.
        guard let header = SlotHeader(at: slot) else { malformed += 1; gapPending = true; return nil }
        let gap = header.flags & SlotHeader.flagGap != 0 || gapPending
        let length = Int(header.length)
        switch header.kind {
        case .inline:
            guard length <= inlineCapacity else { malformed += 1; gapPending = true; return nil }
            gapPending = false
            return body(MessageView(bytes: UnsafeRawBufferPointer(start: slot + SlotHeader.size, count: length),
                                        sender: header.sender, sequence: header.sequence, afterGap: gap))
        case .pool:
            if peerPools[header.sender] == nil {
                // The host sends the pool's descriptor before the first message that uses it.
                try pumpControl(blocking: false)
            }
            guard let peer = peerPools[header.sender]?.pool, peer.isValid(position: header.poolPosition, length: length) else {
                malformed += 1; gapPending = true
                return nil
            }
            guard peer.isIntact(position: header.poolPosition) else {
                lapped += 1; gapPending = true
                return nil
            }
            let result = body(MessageView(bytes: UnsafeRawBufferPointer(start: peer.bytes(at: header.poolPosition, length: length), count: length),
                                              sender: header.sender, sequence: header.sequence, afterGap: gap))
            guard peer.isIntact(position: header.poolPosition) else {
                lapped += 1; gapPending = true
                return nil
            }
            gapPending = false
            return result
        }
    }
}
