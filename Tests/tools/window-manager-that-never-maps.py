#!/usr/bin/python3
"""A window manager that takes the screen's map requests and never carries them out: a window manager that
hangs, as a broken desktop's can. Prints "managing" once it holds the screen, then ignores every event."""
from Xlib import X, display

d = display.Display()
d.screen().root.change_attributes(event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
d.sync()
print("managing", flush=True)
while True:
    d.next_event()  # a MapRequest is read and dropped: the window stays unmapped
