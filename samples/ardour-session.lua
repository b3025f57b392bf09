-- Ardour on jackd-ipn, through Ardour's own scripting host:
--   SESSION_DIR=/tmp/s WHILE_ROLLING="sleep 2" ipn-jack ardour7-lua samples/ardour-session.lua
-- with a jackd-ipn serving JACK's default server (or the one JACK_DEFAULT_SERVER names). Starts Ardour's JACK
-- engine, makes a session in SESSION_DIR, rolls with the metronome on, runs the shell command WHILE_ROLLING
-- (a recorder, jack_lsp...) and closes the session.
local dir = assert(os.getenv("SESSION_DIR"), "set SESSION_DIR to the new session's directory")
AudioEngine:set_backend("JACK", "ardour", "")
assert(AudioEngine:start(false) == 0, "the JACK engine did not start")
local s = assert(create_session(dir, "ipn", 48000), "no session was made")
ARDOUR.config():set_clicking(true)
s:request_roll(ARDOUR.TransportRequestSource.TRS_UI)
os.execute(os.getenv("WHILE_ROLLING") or "sleep 2")
print("rolled " .. s:transport_sample())
close_session()
print("closed")
