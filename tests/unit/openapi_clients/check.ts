// Compiled with `tsc --noEmit --strict` against the clients generated from openapi/*.json:
// what a TypeScript caller relies on, checked at the type level.
import type { components as Activity } from "./activity";
import type { components as Referral } from "./referral";
import type { components as Reward } from "./reward";

// True only when A and B are the same type (not merely assignable).
type Equals<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type PrizeType = "coupon" | "physical" | "cash";

// Fixed sets of values are unions, not `string`.
export const prizeTypeOfRecord: Equals<Reward["schemas"]["RewardRecordRead"]["prize_type"], PrizeType> = true;
export const prizeTypeOfIssuance: Equals<Reward["schemas"]["IssuanceRead"]["prize_type"], PrizeType> = true;
export const issuanceForm: Equals<Reward["schemas"]["RewardRecordRead"]["issuance_form"], "automatic" | "manual"> = true;
export const recordStatus: Equals<
  Reward["schemas"]["RecordRef"]["status"],
  "pending" | "locked" | "issuing" | "issued" | "failed" | "cancelled"
> = true;
export const payoutStatus: Equals<Reward["schemas"]["CashPayoutRead"]["status"], "requested" | "paid" | "refused"> = true;
export const eventStatus: Equals<Activity["schemas"]["EventAck"]["status"], "accepted" | "duplicate"> = true;
export const bindingAction: Equals<
  Referral["schemas"]["BindingHistoryRead"]["action"],
  "bound" | "rebound" | "unbound"
> = true;
export const operations: Equals<
  NonNullable<Activity["schemas"]["ActivityRead"]["allowed_operations"]>[number],
  "view" | "edit" | "close" | "publish" | "delete"
> = true;

// @ts-expect-error a value outside the set does not compile
export const notAPrizeType: Reward["schemas"]["RewardRecordRead"]["prize_type"] = "voucher";

// Money is a string both ways: never a JSON number a client could round.
export const cashAmountIn: Equals<Reward["schemas"]["CashPrizeCreate"]["amount"], string> = true;
export const budgetIn: Equals<Activity["schemas"]["BudgetIn"]["amount"], string> = true;
export const eventAmount: Equals<Activity["schemas"]["EventIn"]["amount"], string | null | undefined> = true;
export const costOut: Equals<Activity["schemas"]["PrizeCost"]["amount"], string> = true;
// @ts-expect-error a number is not an amount
export const floatAmount: Reward["schemas"]["CashPrizeCreate"]["amount"] = 10.5;

// Each error's `code` is the union of what that operation answers at that status.
import type { operations as RewardOperations } from "./reward";
type DeletePrizeProblem<S extends 404 | 409 | 503> =
  RewardOperations["delete_prize"]["responses"][S]["content"]["application/problem+json"];
export const inUse: Equals<DeletePrizeProblem<409>["code"], "prize_in_use"> = true;
export const notFound: Equals<DeletePrizeProblem<404>["code"], "prize_not_found"> = true;
export const detail: Equals<DeletePrizeProblem<503>["detail"], string> = true;
// @ts-expect-error a code the operation does not answer at that status does not compile
export const notAtThatStatus: DeletePrizeProblem<409>["code"] = "prize_not_found";
