/** What `GET /api/v1/images` and `GET /api/v1/images/{id}` answer (images/routes.py ImageView). */
export interface GalleryImage {
  id: string;
  seed: number;
  width: number;
  height: number;
  mode: string;
  created_at: string;
  url: string;
  thumbnail_url: string;
  /** The engine's record (results.py ImageMetadata): free-form, so read it defensively. */
  metadata: Record<string, unknown>;
  duplicate_of: string | null;
}

export interface GalleryPage {
  items: GalleryImage[];
  next_cursor: string | null;
}

/** Thumbnails are 256×256 JPEG crops (storage.thumbnail_jpeg). */
export const THUMBNAIL_SIZE = 256;
/** 24 fills whole rows of 2, 3, 4, 6 and 8 columns. */
export const GALLERY_PAGE_SIZE = 24;
