"""Team (assist-to-win, 助力得奖) activities at run time: teams, assists, their rewards
(SPEC §1.8)."""
