/** The generation the Generate page's live panel shows, kept across reloads. */
export const CURRENT_KEY = "safelight.current";

/** Router state that asks the Generate page to show a generation (made by "vary seed"). */
export interface GenerateState {
  current?: string;
}
