package contracts

import "time"

// Trade is one executed trade.
// @contract_id:"trade"
// @contract_version:"1.2.0"
// @status:"active"
type Trade struct {
	TradeID     string    `json:"trade_id" validate:"required,unique" primary_key:"true" pattern:"^T[0-9]{7}$"`
	Symbol      string    `json:"symbol" validate:"required,min=1,max=5"`
	Side        string    `json:"side" validate:"required,oneof=BUY SELL"`
	Quantity    int64     `json:"quantity" validate:"gt=0"`
	Price       float64   `json:"price" validate:"gte=0,lte=100000"`
	TraderEmail string    `json:"trader_email" pii:"true" mask:"hash" access:"compliance"`
	TradedAt    time.Time `json:"traded_at"`
}
