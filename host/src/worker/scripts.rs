//! The Lua scripts that make each of the worker's moves on Redis atomic.
//! They keep kombu's layout (`unacked`, `unacked_index`, the priority lists)
//! and Celery 5.7's chord keys, so Python workers and tooling on the same
//! Redis see what they expect (research/celery-redis.md §2, §5.3, §9).
//!
//! Every timestamp comes from Redis's `TIME`, so workers on machines with
//! different clocks agree on leases and due times.

/// The Lua of a claim, which [`CLAIM`] and [`COMMIT`] (a commit takes the
/// slot's next message) share: `lease(tag)` starts a claim's lease (its
/// `unacked_index` score becomes now); `claim_first(lists, queues, tag, cap,
/// dead)` takes the first message of the first non-empty list of `lists`
/// (the priority lists in kombu's order, each of the queue of the same
/// place in `queues`) and records it in `unacked`/`unacked_index` under
/// `tag`: the claim's own, the fence of its commit. (The message keeps the
/// tag it was sent with; a restore goes by the key in `unacked`, as
/// kombu's does.) A message longer than `cap` bytes is not claimed but
/// moved to `dead` whole, so that it never reaches the worker's memory.
/// Returns `{key, message, 0}`, `{key, '', size}` for a message moved for
/// its size, or false.
///
/// Redis's Lua hashes every byte of every string it makes, so a claim
/// makes one string of the message's size, the `unacked` entry, and finds
/// what it needs by plain searches, never by decoding the message.
macro_rules! claim_lua {
    () => {
        r#"
local function lease(claim)
    local now = redis.call('TIME')
    redis.call('ZADD', 'unacked_index',
        string.format('%.6f', tonumber(now[1]) + tonumber(now[2]) / 1000000), claim)
end
local function claim_first(lists, queues, tag, cap, dead)
    for index = 1, #lists do
        local key = lists[index]
        local raw = redis.call('RPOP', key)
        if raw and #raw > cap then
            redis.call('LPUSH', dead, raw)
            return {key, '', #raw}
        end
        if raw then
            -- A plain search skips the body (base64, no quotes) at memchr's
            -- speed; the rest is small. A key inside a JSON string has its
            -- quotes escaped, so only the envelope's own keys match.
            local queue, exchange = queues[index], ''
            local properties = string.find(raw, '"properties"', 1, true) or 1
            local info = string.find(raw, '"delivery_info"%s*:%s*{', properties) or properties
            local _, _, found = string.find(raw, '"exchange"%s*:%s*"([^"\\]*)"', info)
            if found then exchange = found end
            _, _, found = string.find(raw, '"routing_key"%s*:%s*"([^"\\]*)"', info)
            if found then queue = found end
            lease(tag)
            redis.call('HSET', 'unacked', tag,
                '[' .. raw .. ', ' .. cjson.encode(exchange) .. ', ' .. cjson.encode(queue) .. ']')
            return {key, raw, 0}
        end
    end
    return false
end
"#
    };
}

/// Claims a message (see `claim_lua!`'s `claim_first`).
///
/// KEYS: the lists, then the dead-letter list. ARGV: the new tag, the size
/// cap in bytes, then each list's queue name. Returns `{key, message, 0}`,
/// `{key, '', size}` for a message moved for its size, or nil.
pub const CLAIM: &str = concat!(
    claim_lua!(),
    r#"
local lists, queues = {}, {}
for index = 1, #KEYS - 1 do
    lists[index] = KEYS[index]
    queues[index] = ARGV[index + 2]
end
return claim_first(lists, queues, ARGV[1], tonumber(ARGV[2]), KEYS[#KEYS])
"#
);

/// A claim by plain commands, kept out of Lua (whose strings hash every
/// byte): the message is moved by a plain `LMOVE` (in a `MULTI` after
/// which this script runs: `moved`) or `BLMOVE` (a wait that claims what
/// arrives, before which this script runs: `ahead`) to a list of its own,
/// `wfhost.claimed.<tag>`, and this script notes the claim under way
/// (`wfhost.claiming`, scored by Redis's time, and the list it came from
/// in `wfhost.claiming.keys`) — after a move only when it found a message.
/// The worker then writes the `unacked` entry by a plain `HSET` and ends
/// the claim with [`CLAIMED`]; a claim whose worker died in between is put
/// back by [`RESTORE_CLAIMING`].
///
/// KEYS: the claim's list. ARGV: the tag, the list it came from, `moved`
/// or `ahead`. Returns 1 when the claim was noted, else 0.
pub const CLAIMING: &str = r#"
if ARGV[3] == 'moved' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now = redis.call('TIME')
redis.call('ZADD', 'wfhost.claiming', string.format('%.6f', tonumber(now[1]) + tonumber(now[2]) / 1000000), ARGV[1])
redis.call('HSET', 'wfhost.claiming.keys', ARGV[1], ARGV[2])
return 1
"#;

/// Ends a claim begun by [`CLAIMING`], after the plain `HSET` of its
/// `unacked` entry in the same `MULTI`: its lease starts (kombu's
/// `unacked_index`, at Redis's time) and the claim under way is forgotten.
/// With ARGV[2] = `dead`, the message goes to the dead-letter list instead
/// (here, so that it is not sent back to the worker that sets it aside
/// for its size: the one time a large message becomes a Lua string); with
/// `drop`, a wait took nothing and the claim under way is forgotten.
///
/// KEYS: the claim's list, the dead-letter list. ARGV: the tag, and
/// `keep`, `dead` or `drop`.
pub const CLAIMED: &str = r#"
if ARGV[2] == 'keep' then
    local now = redis.call('TIME')
    redis.call('ZADD', 'unacked_index', string.format('%.6f', tonumber(now[1]) + tonumber(now[2]) / 1000000), ARGV[1])
elseif ARGV[2] == 'dead' then
    redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', 'wfhost.claiming', ARGV[1])
redis.call('HDEL', 'wfhost.claiming.keys', ARGV[1])
return 1
"#;

/// Puts back the messages of claims begun by [`CLAIMING`] whose worker
/// died before it ended them (noted more than ARGV[1] seconds ago; a wait
/// that claims is noted before it waits, so the bound must exceed the
/// longest wait): to the front of
/// the list they came from, as a restore puts a message back. Returns how
/// many.
pub const RESTORE_CLAIMING: &str = r#"
local now = redis.call('TIME')
local ceiling = tonumber(now[1]) + tonumber(now[2]) / 1000000 - tonumber(ARGV[1])
local tags = redis.call('ZRANGEBYSCORE', 'wfhost.claiming', '-inf', string.format('%.6f', ceiling),
    'LIMIT', 0, tonumber(ARGV[2]))
local restored = 0
for _, tag in ipairs(tags) do
    local list = redis.call('HGET', 'wfhost.claiming.keys', tag)
    local held = 'wfhost.claimed.' .. tag
    if list and redis.call('HEXISTS', 'unacked', tag) == 0 then
        restored = restored + redis.call('LLEN', held)
        while redis.call('LMOVE', held, list, 'RIGHT', 'RIGHT') do end
    end
    redis.call('DEL', held)
    redis.call('ZREM', 'wfhost.claiming', tag)
    redis.call('HDEL', 'wfhost.claiming.keys', tag)
end
return restored
"#;

/// Moves a claimed message to the dead-letter list and drops its claim, at
/// once: what the worker does with a message it cannot read at all.
///
/// KEYS: the dead-letter list. ARGV: the claim's tag, the message.
pub const DEAD_LETTER: &str = r#"
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('ZREM', 'unacked_index', ARGV[1])
redis.call('HDEL', 'unacked', ARGV[1])
return 1
"#;

/// Gives a claimed message that never ran back to the list it came from,
/// where consumers take next, and drops its claim — unless the claim is
/// gone already (a sweep restored it). What a stopping worker does with
/// the messages it claimed ahead, as kombu gives back a consumer's
/// unacknowledged messages when its channel closes.
///
/// KEYS: the list. ARGV: the claim's tag, the message. Returns 1 when
/// given back, else 0.
pub const GIVE_BACK: &str = r#"
if redis.call('HDEL', 'unacked', ARGV[1]) == 0 then return 0 end
redis.call('ZREM', 'unacked_index', ARGV[1])
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1
"#;

/// Renews a claim's lease: its `unacked_index` score becomes now, so no
/// sweep takes a message whose worker is alive. Returns 0 when the claim
/// is gone (a sweep restored it: the lease is lost).
pub const RENEW: &str = r#"
if redis.call('HEXISTS', 'unacked', ARGV[1]) == 0 then return 0 end
local now = redis.call('TIME')
local score = string.format('%.6f', tonumber(now[1]) + tonumber(now[2]) / 1000000)
redis.call('ZADD', 'unacked_index', 'XX', score, ARGV[1])
return 1
"#;

/// Commits a step: its results, the messages it sends and its
/// acknowledgement, all or nothing, and only while its claim stands —
/// after counting the chord members it finished, as Celery 5.7's
/// `CHORD_PART_RETURN_LUA` counts them: once per `task id:index` (a member
/// run twice counts once), and, when the last one arrives, taking the
/// claim to send the body. A count that completes a chord ends the script
/// before anything else is done, with the chord's results: the worker
/// builds the body and commits again, the body guarded by that claim.
///
/// A message the committing worker runs next (the next step of its chain)
/// is not pushed but claimed for it in the commit: its `unacked` entry
/// written and its lease started, as a claim does. Otherwise the commit
/// may claim the slot's next message from the queues, as [`CLAIM`] does.
///
/// A large message (see `broker::STAGE_FROM_BYTES`) is pushed onto its
/// queue by a plain `LPUSH` (or its `unacked` entry written by a plain
/// `HSET`) just before the script, in the same `MULTI`, so that it never
/// becomes a Lua string (Redis's Lua hashes every byte of every string a
/// script makes or is given); the script takes back the pushes and claims
/// that must not happen (the claim is lost, a chord completed first, or
/// their chord guard does not hold) without reading them: `LSET` to a
/// marker, then `LREM`; `HDEL`.
///
/// KEYS: the lists of the large pushes, in the order pushed. ARGV: the
/// claim's tag ('' for none), the result expiry in seconds (0: none), how
/// long a chord's body claim lasts (s), the number of large pushes *n*,
/// then each one's index from the left of its list when the script runs;
/// the number of large claims, then each one's tag; the number of lists to
/// take the slot's next message from (0: none), and if any, the next
/// claim's tag, the size cap, the dead-letter list and each list with its
/// queue name;
/// the number of chord members to count, then each one's group key
/// (`celery-taskset-meta-<group>`, to which the chord's keys add a suffix), task
/// id, encoded `[1, id, state, result]`, index and claim token (`id:index`,
/// so that the same member run again after its worker died holds the claim
/// it took); then operations: `M key meta` stores and publishes a meta
/// unless a SUCCESS is stored there; `L key message` pushes (where
/// consumers take last); `R key entry` appends (an audit record); `P k` is
/// the large push `k` (taken back unless it is to happen); `C tag entry`
/// claims a message for the committing worker (its `unacked` entry); `Q k`
/// is the large claim `k` (its lease started, or taken back); `Z key score
/// member` delays; `S key value` sets with the expiry; `D key` deletes; `X
/// c j t s d ttl` ends a chord (its keys deleted, its claim key marked
/// done); `G c s token` makes the operations up to the next `U` happen only
/// while that chord's body claim is held by `token` (or retaken, when it
/// lapsed and the chord is not done, as Celery 5.7's extend script does).
///
/// Returns `{'1'}` when committed, `{'1', key, message, size}` when the
/// next message was claimed too (as `claim_first` returns it); `{'0'}`
/// when the claim is lost (nothing
/// is done, the large pushes taken back); `{'2', k, count, entries…}…` when
/// counting completed chords whose body this claim now holds (`k`: the
/// member's place among those counted; `entries`: the chord's `.j`, in
/// order), nothing else done.
pub const COMMIT: &str = concat!(
    claim_lua!(),
    r#"
local tag, expires, claim_for = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local pushed = tonumber(ARGV[4])
local held = tonumber(ARGV[5 + pushed])
local withdrawn = {}
local function withdraw(k)
    redis.call('LSET', KEYS[k], tonumber(ARGV[4 + k]), 'wfhost.withdrawn')
    withdrawn[KEYS[k]] = true
end
local function forget_withdrawn()
    for key in pairs(withdrawn) do redis.call('LREM', key, 0, 'wfhost.withdrawn') end
end
local function take_back()
    for k = 1, pushed do withdraw(k) end
    forget_withdrawn()
    for k = 1, held do redis.call('HDEL', 'unacked', ARGV[5 + pushed + k]) end
end
if tag ~= '' and redis.call('HEXISTS', 'unacked', tag) == 0 then
    take_back()
    return {'0'}
end
local i = 6 + pushed + held
local fetching = tonumber(ARGV[i])
local fetch_tag, fetch_cap, fetch_dead = ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
local fetch_lists, fetch_queues = {}, {}
if fetching > 0 then
    for k = 1, fetching do
        fetch_lists[k] = ARGV[i + 2 + 2 * k]
        fetch_queues[k] = ARGV[i + 3 + 2 * k]
    end
    i = i + 4 + 2 * fetching
else
    i = i + 1
end
local counts = tonumber(ARGV[i])
i = i + 1
local complete = {'2'}
for k = 1, counts do
    local base = ARGV[i]
    local id, encoded, index, token = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    i = i + 5
    local joined, extra_key, size_key, counted = base .. '.j', base .. '.t', base .. '.s', base .. '.d'
    local claim = base .. '.c'
    if redis.call('GET', claim) ~= 'done' then
        -- A member counted once: its attempt's id and place, added to
        -- the set of those counted, say whether it was already.
        if redis.call('SADD', counted, id .. ':' .. index) == 1 then
            redis.call('ZADD', joined, index, encoded)
        end
        local ready = redis.call('ZCOUNT', joined, '-inf', '+inf')
        if expires > 0 then
            for _, key in ipairs({joined, extra_key, size_key, counted, base}) do
                redis.call('EXPIRE', key, expires)
            end
        end
        local sizes = redis.call('MGET', extra_key, size_key)
        local extra, size = sizes[1], sizes[2]
        if size and ready == tonumber(size) + tonumber(extra or 0)
            and (redis.call('SET', claim, token, 'NX', 'EX', claim_for)
                 or redis.call('GET', claim) == token) then
            local entries = redis.call('ZRANGE', joined, 0, -1)
            complete[#complete + 1] = tostring(k)
            complete[#complete + 1] = tostring(#entries)
            for _, entry in ipairs(entries) do complete[#complete + 1] = entry end
        end
    end
end
if #complete > 1 then
    take_back()
    return complete
end
local run = true
local function set(key, value)
    if expires > 0 then
        redis.call('SET', key, value, 'EX', expires)
    else
        redis.call('SET', key, value)
    end
end
while i <= #ARGV do
    local op = ARGV[i]
    if op == 'M' then
        if run then
            local old = redis.call('GET', ARGV[i + 1])
            if not (old and string.find(old, '"status": "SUCCESS"', 1, true)) then
                set(ARGV[i + 1], ARGV[i + 2])
                redis.call('PUBLISH', ARGV[i + 1], ARGV[i + 2])
            end
        end
        i = i + 3
    elseif op == 'L' then
        if run then redis.call('LPUSH', ARGV[i + 1], ARGV[i + 2]) end
        i = i + 3
    elseif op == 'R' then
        if run then redis.call('RPUSH', ARGV[i + 1], ARGV[i + 2]) end
        i = i + 3
    elseif op == 'P' then
        if not run then withdraw(tonumber(ARGV[i + 1])) end
        i = i + 2
    elseif op == 'C' then
        if run then
            redis.call('HSET', 'unacked', ARGV[i + 1], ARGV[i + 2])
            lease(ARGV[i + 1])
        end
        i = i + 3
    elseif op == 'Q' then
        local claim = ARGV[5 + pushed + tonumber(ARGV[i + 1])]
        if run then lease(claim) else redis.call('HDEL', 'unacked', claim) end
        i = i + 2
    elseif op == 'Z' then
        if run then redis.call('ZADD', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]) end
        i = i + 4
    elseif op == 'S' then
        if run then set(ARGV[i + 1], ARGV[i + 2]) end
        i = i + 3
    elseif op == 'D' then
        if run then redis.call('DEL', ARGV[i + 1]) end
        i = i + 2
    elseif op == 'X' then
        if run then
            redis.call('DEL', ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5])
            redis.call('SET', ARGV[i + 1], 'done', 'EX', tonumber(ARGV[i + 6]))
        end
        i = i + 7
    elseif op == 'G' then
        local current = redis.call('GET', ARGV[i + 1])
        run = current == ARGV[i + 3]
        if not current and redis.call('EXISTS', ARGV[i + 2]) == 1 then
            redis.call('SET', ARGV[i + 1], ARGV[i + 3], 'EX', 60)
            run = true
        end
        i = i + 4
    elseif op == 'U' then
        run = true
        i = i + 1
    else
        return redis.error_reply('wfhost commit: unknown operation ' .. tostring(op))
    end
end
forget_withdrawn()
if tag ~= '' then
    redis.call('ZREM', 'unacked_index', tag)
    redis.call('HDEL', 'unacked', tag)
end
if fetching > 0 then
    local got = claim_first(fetch_lists, fetch_queues, fetch_tag, fetch_cap, fetch_dead)
    if got then return {'1', got[1], got[2], tostring(got[3])} end
end
return {'1'}
"#
);

/// Moves due delayed messages (retries, countdowns, ETAs) from the
/// delayed set to their lists. A member is `list key` `\n` `message`.
/// KEYS: the delayed set. ARGV: the most to move. Returns how many moved.
pub const PROMOTE: &str = r#"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
    local cut = string.find(member, '\n', 1, true)
    if cut then
        redis.call('LPUSH', string.sub(member, 1, cut - 1), string.sub(member, cut + 1))
    end
    redis.call('ZREM', KEYS[1], member)
end
return #due
"#;

/// Puts back the messages of consumers that died: claims older than the
/// visibility timeout go back to the front of their priority list, marked
/// redelivered, as kombu's `restore_visible` does (same tag, same list).
/// Each put back counts the delivery to come in the message's
/// `wfhost_deliveries` header (the first is 1 and not written); one
/// delivered as often as the cap allows goes to the dead-letter list
/// instead, so that a message that kills or stalls every
/// consumer that takes it is not taken forever.
///
/// KEYS: the dead-letter list. ARGV: the visibility timeout (s), the most
/// to restore, the priority separator, the most deliveries. Returns
/// `{restored, dead-lettered}`.
pub const RESTORE: &str = r#"
local now = redis.call('TIME')
local ceiling = tonumber(now[1]) + tonumber(now[2]) / 1000000 - tonumber(ARGV[1])
local tags = redis.call('ZRANGEBYSCORE', 'unacked_index', '-inf', string.format('%.6f', ceiling),
    'LIMIT', 0, tonumber(ARGV[2]))
local most = tonumber(ARGV[4])
local restored, dead = 0, 0
for _, tag in ipairs(tags) do
    local payload = redis.call('HGET', 'unacked', tag)
    redis.call('ZREM', 'unacked_index', tag)
    redis.call('HDEL', 'unacked', tag)
    if payload then
        local ok, entry = pcall(cjson.decode, payload)
        if ok and type(entry) == 'table' and type(entry[1]) == 'table' and type(entry[3]) == 'string' then
            local message = entry[1]
            if type(message['headers']) ~= 'table' then message['headers'] = {} end
            local headers = message['headers']
            headers['redelivered'] = true
            local made = tonumber(headers['wfhost_deliveries']) or 1
            local properties = message['properties']
            local priority = 0
            if type(properties) == 'table' then
                if type(properties['delivery_info']) == 'table' then
                    properties['delivery_info']['redelivered'] = true
                end
                priority = tonumber(properties['priority']) or 0
            end
            if made >= most then
                redis.call('LPUSH', KEYS[1], cjson.encode(message))
                dead = dead + 1
            else
                headers['wfhost_deliveries'] = made + 1
                local step = 0
                for _, s in ipairs({3, 6, 9}) do if priority >= s then step = s end end
                local key = entry[3]
                if step > 0 then key = key .. ARGV[3] .. step end
                redis.call('RPUSH', key, cjson.encode(message))
                restored = restored + 1
            end
        else
            -- Not even its claim can be read: kept whole for a person.
            redis.call('LPUSH', KEYS[1], payload)
            dead = dead + 1
        end
    end
end
return {restored, dead}
"#;
