import CMedia

/// A line of text drawn into the luma plane of a picture (SDL_ttf, no display needed): the state lines a
/// virtual webcam shows its readers ("waiting for a publisher", "stream ended").
final class Caption {
    private let font: OpaquePointer?

    /// Text about `height / 16` pixels high; no font found (fonts-dejavu-core) draws nothing.
    init(pictureHeight height: Int) {
        font = TTF_Init() == 0 ? ViewerWindow.fontPaths.lazy.compactMap { TTF_OpenFont($0, Int32(max(10, height / 16))) }.first : nil
    }

    deinit {
        if let font { TTF_CloseFont(font) }
        TTF_Quit()
    }

    var hasFont: Bool { font != nil }

    /// Draws `text` light on the luma plane `y` (`width` x `height`, tightly packed), centred across, its top at
    /// `top` (nil: centred down too).
    func draw(_ text: String, luma y: UnsafeMutablePointer<UInt8>, width: Int, height: Int, top: Int? = nil) {
        guard let font, !text.isEmpty,
              let surface = TTF_RenderUTF8_Shaded(font, text, SDL_Color(r: 255, g: 255, b: 255, a: 255), SDL_Color(r: 0, g: 0, b: 0, a: 255)) else { return }
        defer { SDL_FreeSurface(surface) }
        // An 8-bit surface whose palette runs from the background (0) to the text (255): the value is coverage.
        let w = Int(surface.pointee.w), h = Int(surface.pointee.h), pitch = Int(surface.pointee.pitch)
        let pixels = surface.pointee.pixels.assumingMemoryBound(to: UInt8.self)
        let x0 = max(0, (width - w) / 2), y0 = max(0, top ?? (height - h) / 2)
        for row in 0..<min(h, height - y0) {
            for col in 0..<min(w, width - x0) {
                let a = Int(pixels[row * pitch + col])
                guard a > 0 else { continue }
                let p = y + (y0 + row) * width + x0 + col
                p.pointee = UInt8((Int(p.pointee) * (255 - a) + 235 * a) / 255)
            }
        }
    }
}
