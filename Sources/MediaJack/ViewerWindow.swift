import CMedia
import Foundation

/// The window of `mediajack view` (SDL2): the newest picture, scaled to fit with its aspect kept, a
/// state line over a dimmed picture when there is nothing live, and an overlay with resolution, fps,
/// drops and latency. Keys: f fullscreen, o overlay, q or Esc quit. SDL wants the main thread.
public final class ViewerWindow {
    public struct Stats: Sendable {
        public var shown = 0
        public var fps = 0.0
        public var latencyMilliseconds = 0.0
        /// Capture-to-screen latency of the pictures shown (the latest 10,000), in milliseconds.
        public var latencies: [Double] = []

        /// The latency below which `fraction` of the shown pictures stayed (0.5: the median).
        public func latency(percentile fraction: Double) -> Double? {
            guard !latencies.isEmpty else { return nil }
            let sorted = latencies.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
        }
    }

    private let window: OpaquePointer
    private let renderer: OpaquePointer
    private var texture: OpaquePointer?
    private var textureSize = (0, 0)
    private let font: OpaquePointer?
    private var overlay = true
    private var fullscreen = false
    public private(set) var stats = Stats()
    private var shownTimes: [Double] = []
    private var lastSerial = 0

    /// Fonts tried for the overlay, in order (Debian: fonts-dejavu-core).
    static let fontPaths = ["/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                            "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf"]

    private let report: (String) -> Void

    /// `report` hears what the keys did ("fullscreen on", "overlay off").
    public init(title: String, width: Int = 640, height: Int = 360, fullscreen: Bool = false,
                report: @escaping (String) -> Void = { _ in }) throws(MediaError) {
        self.report = report
        let env = ProcessInfo.processInfo.environment
        // Without a display SDL would fall back to an invisible window; say so instead (SDL_VIDEODRIVER,
        // e.g. kmsdrm on a console, is the user's explicit choice).
        guard env["DISPLAY"] != nil || env["WAYLAND_DISPLAY"] != nil || env["SDL_VIDEODRIVER"] != nil else {
            throw .unsupported("no display to open a window on: DISPLAY and WAYLAND_DISPLAY are not set (on a machine without a screen use `mediajack serve` and a browser, or `mediajack record`)")
        }
        // SIGINT and SIGTERM stay the program's: SDL would otherwise catch them when they have their default
        // action, and turn them into a quit event nothing reads while SDL waits for the window to be mapped.
        _ = SDL_SetHint(SDL_HINT_NO_SIGNAL_HANDLERS, "1")
        guard SDL_Init(UInt32(SDL_INIT_VIDEO)) == 0 else {
            throw .unsupported("cannot open a window: \(String(cString: SDL_GetError())) (set DISPLAY or WAYLAND_DISPLAY; on a machine without a screen use `mediajack serve` and a browser)")
        }
        let flags = SDL_WINDOW_RESIZABLE.rawValue | (fullscreen ? SDL_WINDOW_FULLSCREEN_DESKTOP.rawValue : 0)
        let position = Int32(cm_sdl_windowpos_undefined())
        guard let w = SDL_CreateWindow(title, position, position, Int32(width), Int32(height), flags) else {
            let why = String(cString: SDL_GetError())
            SDL_Quit()
            throw .unsupported("cannot open a window: \(why)")
        }
        // Accelerated when the display has it, else software: both show the same picture.
        guard let r = SDL_CreateRenderer(w, -1, 0) ?? SDL_CreateRenderer(w, -1, SDL_RENDERER_SOFTWARE.rawValue) else {
            let why = String(cString: SDL_GetError())
            SDL_DestroyWindow(w); SDL_Quit()
            throw .unsupported("cannot draw in the window: \(why)")
        }
        window = w
        renderer = r
        self.fullscreen = fullscreen
        _ = SDL_SetRenderDrawBlendMode(r, SDL_BLENDMODE_BLEND)
        font = TTF_Init() == 0 ? Self.fontPaths.lazy.compactMap { TTF_OpenFont($0, 15) }.first : nil
    }

    deinit {
        if let font { TTF_CloseFont(font) }
        TTF_Quit()
        if let texture { SDL_DestroyTexture(texture) }
        SDL_DestroyRenderer(renderer)
        SDL_DestroyWindow(window)
        SDL_Quit()
    }

    /// Whether the overlay could be drawn (a font was found).
    public var hasFont: Bool { font != nil }

    public enum Input { case quit, redraw, none }

    /// Handles window events for up to `timeout` seconds: whether the user asked to quit, or the window
    /// needs drawing again (exposed, resized, a key changed what it shows).
    public func handleEvents(timeout: Double) -> Input {
        var event = SDL_Event()
        var waited = false
        var result = Input.none
        while waited ? SDL_PollEvent(&event) != 0 : SDL_WaitEventTimeout(&event, Int32(timeout * 1000)) != 0 {
            waited = true
            switch event.type {
            case SDL_QUIT.rawValue: return .quit
            case SDL_WINDOWEVENT.rawValue: result = .redraw
            case SDL_KEYDOWN.rawValue:
                switch UInt32(bitPattern: event.key.keysym.sym) {
                case SDLK_q.rawValue, SDLK_ESCAPE.rawValue: return .quit
                case SDLK_f.rawValue:
                    if toggleFullscreen() { report("fullscreen \(fullscreen ? "on" : "off")") } else { report("fullscreen refused: \(String(cString: SDL_GetError()))") }
                    result = .redraw
                case SDLK_o.rawValue: toggleOverlay(); report("overlay \(overlay ? "on" : "off")"); result = .redraw
                default: break
                }
            default: break
            }
        }
        return result
    }

    public func toggleOverlay() { overlay.toggle() }

    /// Fullscreen on the window's display (the window manager does it); returns whether SDL agreed.
    @discardableResult
    public func toggleFullscreen() -> Bool {
        guard SDL_SetWindowFullscreen(window, fullscreen ? 0 : SDL_WINDOW_FULLSCREEN_DESKTOP.rawValue) == 0 else { return false }
        fullscreen.toggle()
        return true
    }

    /// Makes the window the picture's size (when a new stream starts and the window is not fullscreen).
    public func fit(width: Int, height: Int) {
        guard !fullscreen else { return }
        SDL_SetWindowSize(window, Int32(width), Int32(height))
    }

    /// Draws one screen: the picture (dimmed with `status` over it when not live) and the overlay lines.
    public func draw(_ picture: LiveViewer.Picture?, status: String?, overlayLines: [String]) {
        let now = Date().timeIntervalSince1970
        if let p = picture, p.serial != lastSerial {
            upload(p)
            lastSerial = p.serial
            stats.shown += 1
            stats.latencyMilliseconds = max(0, now * 1000 - Double(p.captureTime) / 1e6)
            if stats.latencies.count >= 10_000 { stats.latencies.removeFirst(5_000) }
            stats.latencies.append(stats.latencyMilliseconds)
            shownTimes.append(now)
        }
        shownTimes.removeAll { $0 < now - 1 }
        stats.fps = Double(shownTimes.count)

        _ = SDL_SetRenderDrawColor(renderer, 0, 0, 0, 255)
        _ = SDL_RenderClear(renderer)
        var outW: Int32 = 0, outH: Int32 = 0
        _ = SDL_GetRendererOutputSize(renderer, &outW, &outH)
        if let texture, textureSize.0 > 0 {
            let scale = min(Double(outW) / Double(textureSize.0), Double(outH) / Double(textureSize.1))
            let w = Int32(Double(textureSize.0) * scale), h = Int32(Double(textureSize.1) * scale)
            var rect = SDL_Rect(x: (outW - w) / 2, y: (outH - h) / 2, w: w, h: h)
            _ = SDL_RenderCopy(renderer, texture, nil, &rect)
        }
        if let status {
            _ = SDL_SetRenderDrawColor(renderer, 0, 0, 0, 170)
            var all = SDL_Rect(x: 0, y: 0, w: outW, h: outH)
            _ = SDL_RenderFillRect(renderer, &all)
            text(status, x: nil, y: outH / 2 - 10, size: outW)
        }
        if overlay && !overlayLines.isEmpty {
            let lineHeight: Int32 = 18
            var y = outH - Int32(overlayLines.count) * lineHeight - 6
            _ = SDL_SetRenderDrawColor(renderer, 0, 0, 0, 150)
            var box = SDL_Rect(x: 0, y: y - 4, w: min(outW, 420), h: Int32(overlayLines.count) * lineHeight + 10)
            _ = SDL_RenderFillRect(renderer, &box)
            for line in overlayLines { text(line, x: 8, y: y, size: outW); y += lineHeight }
        }
        SDL_RenderPresent(renderer)
    }

    private func upload(_ p: LiveViewer.Picture) {
        if textureSize != (p.width, p.height) {  // a size that failed once is not retried every picture
            if let texture { SDL_DestroyTexture(texture) }
            texture = SDL_CreateTexture(renderer, SDL_PIXELFORMAT_IYUV.rawValue, Int32(SDL_TEXTUREACCESS_STREAMING.rawValue), Int32(p.width), Int32(p.height))
            textureSize = (p.width, p.height)
            if texture == nil { report("cannot show \(p.width)x\(p.height) pictures: \(String(cString: SDL_GetError()))") }
        }
        guard let texture else { return }
        let cw = (p.width + 1) / 2, ch = (p.height + 1) / 2
        p.bytes.withUnsafeBufferPointer { b in
            let y = b.baseAddress!, u = y + p.width * p.height, v = u + cw * ch
            _ = SDL_UpdateYUVTexture(texture, nil, y, Int32(p.width), u, Int32(cw), v, Int32(cw))
        }
    }

    /// White text at (x, y); x nil centres it.
    private func text(_ s: String, x: Int32?, y: Int32, size width: Int32) {
        guard let font, !s.isEmpty, let surface = TTF_RenderUTF8_Blended(font, s, SDL_Color(r: 255, g: 255, b: 255, a: 255)) else { return }
        defer { SDL_FreeSurface(surface) }
        guard let t = SDL_CreateTextureFromSurface(renderer, surface) else { return }
        defer { SDL_DestroyTexture(t) }
        let w = surface.pointee.w, h = surface.pointee.h
        var rect = SDL_Rect(x: x ?? max(0, (width - w) / 2), y: y, w: w, h: h)
        _ = SDL_RenderCopy(renderer, t, nil, &rect)
    }
}
